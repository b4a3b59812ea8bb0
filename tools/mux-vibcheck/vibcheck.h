/*
 * vibcheck.h: mux-vibcheck, the verifier of ESXi VIBs (vib/README.md).
 *
 * One pass over one file, everything in memory (a VIB is a few MB; the
 * limits below bound what a hostile file can make us allocate):
 *
 *   vc-ar.c       the ar container: magic, headers, member names and order
 *   vc-xml.c      a small XML reader (elements, attributes, text) for
 *                 descriptor.xml; no DTDs, no namespaces, no CDATA
 *   vc-desc.c     descriptor.xml: required elements and their order, values,
 *                 file list, payload entries and their checksums
 *   vc-payload.c  each payload: size and sha-256 as stored, gunzip (zlib),
 *                 sha-256 / sha-1 of the tar, tar entries, owners, modes,
 *                 directories, file list against the payload
 *   vc-elf.c      executables: static x86-64 (no PT_INTERP, no DT_NEEDED)
 *   vc-sig.c      sig.pkcs7: detached PKCS#7/CMS signature of descriptor.xml
 *                 (OpenSSL), or empty for the community acceptance level
 *
 * Every check that fails calls vc_fault() with a message that names the
 * fault; checking goes on where it still makes sense, so one run reports
 * every fault it can find. The exit status is 0 only without faults.
 */
#ifndef VIBCHECK_H
#define VIBCHECK_H

#include <stddef.h>
#include <stdint.h>

#define VC_VIB_MAX		(1024u << 20)	/* whole VIB file */
#define VC_TAR_MAX		(512u << 20)	/* one payload, uncompressed */
#define VC_MEMBERS_MAX		64		/* ar members */
#define VC_AR_NAME_MAX		15		/* ESXi: member names <= 15 */
#define VC_XML_DEPTH_MAX	32
#define VC_SHA256_HEX		64
#define VC_SHA1_HEX		40

/* The run: options and the fault count. */
struct vc {
	const char	*path;		/* the VIB, for messages */
	const char	*ca_file;	/* --ca: verify the signer's chain */
	int		 require_sig;	/* --require-signature */
	int		 verbose;	/* -v: list what was checked */
	unsigned	 faults;
	char		 signer[256];	/* subject of a good signature */
};

void	vc_fault(struct vc *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
void	vc_info(struct vc *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));

/* vc-ar.c */
struct vc_member {
	char			 name[17];
	const unsigned char	*data;
	size_t			 size;
};
int	vc_ar_parse(struct vc *, const unsigned char *, size_t,
	    struct vc_member *, size_t, size_t *);
void	vc_ar_check_order(struct vc *, const struct vc_member *, size_t);

/* vc-xml.c */
struct vc_xml_attr {
	char	*name;
	char	*value;
};
struct vc_xml {
	char			 *name;
	int			  line;
	struct vc_xml_attr	 *attrs;
	size_t			  nattrs;
	char			 *text;		/* character data, entities decoded */
	struct vc_xml		**kids;
	size_t			  nkids;
};
struct vc_xml	*vc_xml_parse(const char *, size_t, char *, size_t);
void		 vc_xml_free(struct vc_xml *);
struct vc_xml	*vc_xml_child(const struct vc_xml *, const char *);
const char	*vc_xml_attr(const struct vc_xml *, const char *);
const char	*vc_xml_text(const struct vc_xml *);

/* vc-desc.c: what the descriptor says, once checked. */
struct vc_payload_desc {
	const char	*name;
	const char	*type;
	uint64_t	 size;
	int		 size_ok;
	const char	*sha256;		/* of the member as stored */
	const char	*sha256_gunzip;		/* of the uncompressed tar */
	const char	*sha1_gunzip;
};
struct vc_desc {
	const char		*name;
	const char		*version;
	const char		*vendor;
	const char		*acceptance;
	const char		**files;	/* file-list */
	size_t			  nfiles;
	struct vc_payload_desc	 *payloads;
	size_t			  npayloads;
};
int	vc_desc_check(struct vc *, const struct vc_xml *, struct vc_desc *);
void	vc_desc_free(struct vc_desc *);

/* vc-payload.c */
struct vc_files;
struct vc_files	*vc_files_new(void);
void		 vc_files_free(struct vc_files *);
void	vc_payload_check(struct vc *, const struct vc_payload_desc *,
	    const struct vc_member *, struct vc_files *);
void	vc_payload_check_list(struct vc *, const struct vc_desc *,
	    const struct vc_files *);

/* vc-elf.c */
int	vc_elf_is_elf(const unsigned char *, size_t);
int	vc_elf_check_static(const unsigned char *, size_t, char *, size_t);

/* vc-sig.c */
void	vc_sig_check(struct vc *, const struct vc_member *,
	    const struct vc_member *, const char *);

/* vibcheck.c: hex digests through OpenSSL EVP ("sha256" or "sha1"). */
int	vc_digest_hex(const char *, const unsigned char *, size_t, char *,
	    size_t);

#endif
