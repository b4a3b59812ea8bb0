/*
 * vc-sig.c: sig.pkcs7, the signature of descriptor.xml.
 *
 * Empty: an unsigned VIB, which ESXi installs only at the community
 * acceptance level (and a fault with --require-signature). Otherwise a
 * detached PKCS#7/CMS SignedData over the exact bytes of descriptor.xml,
 * PEM ("-----BEGIN PKCS7-----", as vib/mkvib.sh writes it) or DER. Without
 * --ca the signature is checked against the certificate it carries (the
 * content digest and the signer's key: a descriptor changed after signing
 * is caught); with --ca the signer's chain is verified too, for any
 * purpose (VMware's and partners' certificates are code-signing ones).
 * Which certificates ESXi itself trusts is its business: see
 * docs/install.md.
 */
#include <stdio.h>
#include <string.h>

/* pem.h first: cms.h declares PEM_read_bio_CMS only when it is there. */
#include <openssl/pem.h>
#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include "vibcheck.h"

static void
vc_sig_openssl_error(char *buf, size_t len)
{
	unsigned long	e, last = 0;

	while ((e = ERR_get_error()) != 0)
		last = e;
	if (last != 0)
		ERR_error_string_n(last, buf, len);
	else
		snprintf(buf, len, "unknown error");
}

static CMS_ContentInfo *
vc_sig_load(const struct vc_member *sm)
{
	CMS_ContentInfo	*cms;
	BIO		*in;

	if ((in = BIO_new_mem_buf(sm->data, (int)sm->size)) == NULL)
		return NULL;
	if (sm->size >= 11 && memcmp(sm->data, "-----BEGIN ", 11) == 0)
		cms = PEM_read_bio_CMS(in, NULL, NULL, NULL);
	else
		cms = d2i_CMS_bio(in, NULL);
	BIO_free(in);
	return cms;
}

void
vc_sig_check(struct vc *vc, const struct vc_member *sm,
    const struct vc_member *dm, const char *acceptance)
{
	CMS_ContentInfo		*cms = NULL;
	STACK_OF(X509)		*signers = NULL;
	X509_STORE		*store = NULL;
	BIO			*content = NULL;
	char			 err[256];
	unsigned		 flags = CMS_BINARY;

	if (sm->size == 0) {
		if (vc->require_sig)
			vc_fault(vc, "signature: sig.pkcs7 is empty and "
			    "--require-signature was given");
		else if (strcmp(acceptance, "community") != 0)
			vc_fault(vc, "signature: sig.pkcs7 is empty but "
			    "acceptance-level is '%s': only community VIBs may "
			    "be unsigned", acceptance);
		else
			vc_info(vc, "unsigned (community acceptance level)");
		return;
	}
	ERR_clear_error();
	if ((cms = vc_sig_load(sm)) == NULL) {
		vc_sig_openssl_error(err, sizeof(err));
		vc_fault(vc, "signature: sig.pkcs7 is not a PKCS#7/CMS "
		    "structure (PEM or DER): %s", err);
		goto out;
	}
	if (OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed) {
		vc_fault(vc, "signature: sig.pkcs7 is not PKCS#7 SignedData");
		goto out;
	}
	if (CMS_is_detached(cms) != 1) {
		vc_fault(vc, "signature: sig.pkcs7 embeds its content; it must "
		    "be a detached signature of descriptor.xml");
		goto out;
	}
	if ((content = BIO_new_mem_buf(dm->data, (int)dm->size)) == NULL ||
	    (store = X509_STORE_new()) == NULL) {
		vc_fault(vc, "out of memory");
		goto out;
	}
	if (vc->ca_file != NULL) {
		if (X509_STORE_load_file(store, vc->ca_file) != 1) {
			vc_sig_openssl_error(err, sizeof(err));
			vc_fault(vc, "signature: cannot load --ca %s: %s",
			    vc->ca_file, err);
			goto out;
		}
		X509_STORE_set_purpose(store, X509_PURPOSE_ANY);
	} else
		flags |= CMS_NO_SIGNER_CERT_VERIFY;
	if (CMS_verify(cms, NULL, store, content, NULL, flags) != 1) {
		vc_sig_openssl_error(err, sizeof(err));
		vc_fault(vc, "signature: sig.pkcs7 does not verify for "
		    "descriptor.xml (tampered descriptor, wrong signature%s): "
		    "%s", vc->ca_file ? " or untrusted signer" : "", err);
		goto out;
	}
	signers = CMS_get0_signers(cms);
	if (signers != NULL && sk_X509_num(signers) > 0)
		X509_NAME_oneline(X509_get_subject_name(sk_X509_value(signers,
		    0)), vc->signer, sizeof(vc->signer));
	else
		snprintf(vc->signer, sizeof(vc->signer), "(unknown signer)");
	vc_info(vc, "signature good, signer %s%s", vc->signer,
	    vc->ca_file ? ", chain verified" : ", chain not verified (no --ca)");
out:
	sk_X509_free(signers);
	X509_STORE_free(store);
	BIO_free(content);
	CMS_ContentInfo_free(cms);
}
