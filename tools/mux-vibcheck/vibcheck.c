/*
 * vibcheck.c: mux-vibcheck, checks that a VIB is one ESXi 6.7 to 8 accepts.
 *
 *   mux-vibcheck [-q] [-v] [--ca FILE] [--require-signature] VIB
 *
 * Prints one line per fault ("mux-vibcheck: VIB: fault") and exits 1, or
 * prints "VIB: OK ..." and exits 0. Exit 2 for usage and I/O errors. What
 * is checked, in order: the ar container and member order, descriptor.xml
 * (elements, order, values), sig.pkcs7, each payload (size, checksums,
 * tar entries, owners, modes, static executables) and the file list
 * against the payloads. See vibcheck.h for the layout of the code.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "vibcheck.h"

static int	vc_quiet;

/*
 * Messages quote bytes from the file under test: anything but printable
 * ASCII is shown as '?', so that a hostile VIB cannot write terminal
 * escapes or broken UTF-8 into the report.
 */
void
vc_fault(struct vc *vc, const char *fmt, ...)
{
	char	msg[1024];
	va_list	ap;

	vc->faults++;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	for (char *c = msg; *c != '\0'; c++)
		if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e)
			*c = '?';
	fprintf(stderr, "mux-vibcheck: %s: %s\n", vc->path, msg);
}

void
vc_info(struct vc *vc, const char *fmt, ...)
{
	va_list	ap;

	if (!vc->verbose)
		return;
	printf("%s: ", vc->path);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

int
vc_digest_hex(const char *alg, const unsigned char *p, size_t n, char *hex,
    size_t hexlen)
{
	unsigned char	md[EVP_MAX_MD_SIZE];
	unsigned int	mdlen = 0;
	const EVP_MD	*type = EVP_get_digestbyname(alg);

	if (type == NULL || EVP_Digest(p, n, md, &mdlen, type, NULL) != 1 ||
	    hexlen < 2 * (size_t)mdlen + 1)
		return -1;
	for (unsigned int i = 0; i < mdlen; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	return 0;
}

/* The whole file, bounded by VC_VIB_MAX. */
static unsigned char *
vc_read_file(const char *path, size_t *lenp)
{
	struct stat	 st;
	unsigned char	*buf;
	size_t		 off = 0;
	ssize_t		 r;
	int		 fd;

	if ((fd = open(path, O_RDONLY)) == -1) {
		fprintf(stderr, "mux-vibcheck: %s: %s\n", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		fprintf(stderr, "mux-vibcheck: %s: not a regular file\n", path);
		close(fd);
		return NULL;
	}
	if ((uint64_t)st.st_size > VC_VIB_MAX) {
		fprintf(stderr, "mux-vibcheck: %s: larger than %u MiB\n", path,
		    VC_VIB_MAX >> 20);
		close(fd);
		return NULL;
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
		fprintf(stderr, "mux-vibcheck: out of memory\n");
		close(fd);
		return NULL;
	}
	while (off < (size_t)st.st_size) {
		r = read(fd, buf + off, (size_t)st.st_size - off);
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0) {
			fprintf(stderr, "mux-vibcheck: %s: read: %s\n", path,
			    r == 0 ? "file shrank" : strerror(errno));
			free(buf);
			close(fd);
			return NULL;
		}
		off += (size_t)r;
	}
	close(fd);
	*lenp = off;
	return buf;
}

static const struct vc_member *
vc_find(const struct vc_member *m, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(m[i].name, name) == 0)
			return &m[i];
	return NULL;
}

static void
vc_usage(void)
{
	fprintf(stderr, "usage: mux-vibcheck [-q] [-v] [--ca FILE] "
	    "[--require-signature] VIB\n"
	    "  --ca FILE            verify the signer's certificate chain "
	    "against FILE\n"
	    "  --require-signature  an empty sig.pkcs7 is a fault\n"
	    "  -v                   list what was checked\n"
	    "  -q                   no OK line\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "ca", required_argument, NULL, 'c' },
		{ "require-signature", no_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct vc		 vc = { 0 };
	struct vc_member	 m[VC_MEMBERS_MAX];
	struct vc_desc		 desc = { 0 };
	const struct vc_member	*dm, *sm, *pm;
	struct vc_files		*files;
	struct vc_xml		*root = NULL;
	unsigned char		*buf;
	size_t			 len, n = 0;
	char			 err[256];
	int			 ch;

	while ((ch = getopt_long(argc, argv, "qvh", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			vc.ca_file = optarg;
			break;
		case 'r':
			vc.require_sig = 1;
			break;
		case 'q':
			vc_quiet = 1;
			break;
		case 'v':
			vc.verbose = 1;
			break;
		default:
			vc_usage();
		}
	}
	if (optind != argc - 1)
		vc_usage();
	vc.path = argv[optind];
	if ((buf = vc_read_file(vc.path, &len)) == NULL)
		return 2;
	if ((files = vc_files_new()) == NULL) {
		fprintf(stderr, "mux-vibcheck: out of memory\n");
		return 2;
	}

	if (vc_ar_parse(&vc, buf, len, m, VC_MEMBERS_MAX, &n) == -1)
		goto done;
	vc_ar_check_order(&vc, m, n);

	if ((dm = vc_find(m, n, "descriptor.xml")) == NULL) {
		vc_fault(&vc, "no descriptor.xml member");
		goto done;
	}
	if ((root = vc_xml_parse((const char *)dm->data, dm->size, err,
	    sizeof(err))) == NULL) {
		vc_fault(&vc, "descriptor.xml: not well-formed XML: %s", err);
		goto done;
	}
	if (vc_desc_check(&vc, root, &desc) == -1)
		goto done;

	if ((sm = vc_find(m, n, "sig.pkcs7")) == NULL)
		vc_fault(&vc, "no sig.pkcs7 member (community VIBs carry an "
		    "empty one)");
	else
		vc_sig_check(&vc, sm, dm, desc.acceptance);

	for (size_t i = 0; i < desc.npayloads; i++) {
		pm = vc_find(m, n, desc.payloads[i].name);
		if (pm == NULL) {
			vc_fault(&vc, "payload '%s' of descriptor.xml has no ar "
			    "member", desc.payloads[i].name);
			continue;
		}
		vc_payload_check(&vc, &desc.payloads[i], pm, files);
	}
	for (size_t i = 2; i < n; i++) {
		int	known = 0;

		for (size_t j = 0; j < desc.npayloads; j++)
			known |= strcmp(m[i].name, desc.payloads[j].name) == 0;
		if (!known && strcmp(m[i].name, "descriptor.xml") != 0 &&
		    strcmp(m[i].name, "sig.pkcs7") != 0)
			vc_fault(&vc, "member order: ar member '%s' is not a "
			    "payload of descriptor.xml", m[i].name);
	}
	vc_payload_check_list(&vc, &desc, files);

done:
	if (vc.faults == 0 && !vc_quiet) {
		printf("%s: OK: %s_bootbank_%s_%s, %zu payload%s, %zu files, "
		    "acceptance %s, %s%s\n", vc.path, desc.vendor, desc.name,
		    desc.version, desc.npayloads, desc.npayloads == 1 ? "" : "s",
		    desc.nfiles, desc.acceptance,
		    vc.signer[0] ? "signed by " : "unsigned",
		    vc.signer[0] ? vc.signer : "");
	} else if (vc.faults > 0)
		fprintf(stderr, "mux-vibcheck: %s: REJECTED, %u fault%s\n",
		    vc.path, vc.faults, vc.faults == 1 ? "" : "s");
	vc_desc_free(&desc);
	vc_xml_free(root);
	vc_files_free(files);
	free(buf);
	return vc.faults == 0 ? 0 : 1;
}
