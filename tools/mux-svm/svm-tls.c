/*
 * svm-tls.c: the SVM end of the link's TLS (protocol 4), server side.
 *
 * TLS 1.3 only. We present --cert/--key; the MUX must present a client
 * certificate that --ca verifies (and, with --client-name, that carries
 * that name as a DNS or IP SAN, or as its CN when it has no DNS SAN). One
 * SSL_CTX per process, made at start-up (any problem: exit 1); one SSL per
 * accepted connection, owned by its bufferevent (svm_conn_bev_new).
 *
 * A connection whose handshake does not complete, or that fails with an
 * OpenSSL error later, is counted in tls_errors and logged with the
 * OpenSSL reason (and the certificate check's, when that is what failed).
 */
#include <arpa/inet.h>

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/util.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "svm.h"

/* TLS failures logged per process (a MUX redials), then only counted. */
#define SVM_TLS_LOG_MAX		10

static SSL_CTX	*svm_tls_ctx;
static unsigned	 svm_tls_logged;

/* OpenSSL's reason for e, short ("certificate verify failed"). */
static const char *
svm_tls_reason(unsigned long e)
{
	const char *r;

	if (e == 0)
		return "failed";
	if (ERR_GET_LIB(e) == ERR_LIB_SYS)
		return strerror(ERR_GET_REASON(e));
	r = ERR_reason_error_string(e);
	return r != NULL ? r : "unknown";
}

static void __attribute__((noreturn))
svm_tls_fatal(const char *what, const char *path)
{
	/* The first error is the cause ("No such file or directory"). */
	svm_fatalx(1, "%s %s: %s", what, path, svm_tls_reason(ERR_peek_error()));
}

void
svm_tls_init(void)
{
	const char *name = svm_opt.tls_client_name;
	X509_VERIFY_PARAM *vp;
	unsigned char ip[16];
	int ok;

	if (svm_opt.tls_off)
		return;
	if ((svm_tls_ctx = SSL_CTX_new(TLS_server_method())) == NULL)
		svm_tls_fatal("TLS:", "cannot create a context");
	if (SSL_CTX_set_min_proto_version(svm_tls_ctx, TLS1_3_VERSION) != 1)
		svm_tls_fatal("TLS:", "cannot require TLS 1.3");
	if (SSL_CTX_use_certificate_chain_file(svm_tls_ctx,
	    svm_opt.tls_cert) != 1)
		svm_tls_fatal("--cert", svm_opt.tls_cert);
	if (SSL_CTX_use_PrivateKey_file(svm_tls_ctx, svm_opt.tls_key,
	    SSL_FILETYPE_PEM) != 1)
		svm_tls_fatal("--key", svm_opt.tls_key);
	if (SSL_CTX_check_private_key(svm_tls_ctx) != 1)
		svm_tls_fatal("--key does not match --cert:", svm_opt.tls_key);
	if (SSL_CTX_load_verify_locations(svm_tls_ctx, svm_opt.tls_ca,
	    NULL) != 1)
		svm_tls_fatal("--ca", svm_opt.tls_ca);
	/* The MUX must authenticate: no certificate, no connection. */
	SSL_CTX_set_verify(svm_tls_ctx,
	    SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	/*
	 * No resumption: every connection shows and checks the MUX's
	 * certificate again (muxd does not resume sessions anyway).
	 */
	SSL_CTX_set_session_cache_mode(svm_tls_ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(svm_tls_ctx, 0);
	/*
	 * libevent closes without close_notify (muxd too), and OpenSSL 3
	 * reports that as an error allow_dirty_shutdown does not catch: it
	 * is an ordinary close here. A frame cut short is still never
	 * decoded: frames carry their length.
	 */
	SSL_CTX_set_options(svm_tls_ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	if (name == NULL)
		return;
	vp = SSL_CTX_get0_param(svm_tls_ctx);
	if (inet_pton(AF_INET, name, ip) == 1 ||
	    inet_pton(AF_INET6, name, ip) == 1)
		ok = X509_VERIFY_PARAM_set1_ip_asc(vp, name);
	else
		ok = X509_VERIFY_PARAM_set1_host(vp, name, 0);
	if (ok != 1)
		svm_tls_fatal("--client-name", name);
}

void
svm_tls_free(void)
{
	if (svm_tls_ctx != NULL)
		SSL_CTX_free(svm_tls_ctx);
	svm_tls_ctx = NULL;
}

/* A TLS server bufferevent on fd (which it owns, even on failure). */
struct bufferevent *
svm_tls_bev_new(struct event_base *base, int fd)
{
	struct bufferevent *bev;
	SSL *ssl;

	if ((ssl = SSL_new(svm_tls_ctx)) == NULL) {
		evutil_closesocket(fd);
		return NULL;
	}
	/* Frees ssl and closes fd when it fails. */
	bev = bufferevent_openssl_socket_new(base, fd, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	/* A MUX that just closes its socket is gone, not a TLS error. */
	if (bev != NULL)
		bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

/* The handshake is done: one info line saying what was agreed, with whom. */
void
svm_tls_connected(struct svm_conn *c)
{
	SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
	X509 *peer;
	char subject[256] = "?";

	c->tls_up = 1;
	if (ssl == NULL || svm_opt.quiet)
		return;
	if ((peer = SSL_get1_peer_certificate(ssl)) != NULL) {
		X509_NAME_oneline(X509_get_subject_name(peer), subject,
		    sizeof(subject));
		X509_free(peer);
	}
	svm_log("conn %" PRIu64 " %s: %s %s, client %s", c->id, c->peer,
	    SSL_get_version(ssl), SSL_get_cipher_name(ssl), subject);
}

/*
 * After an EOF or error event: 1 when it is a TLS failure (an OpenSSL
 * error, or the handshake never completed), with why filled; counted and
 * logged (a few times per process under a flood, then counted only).
 */
int
svm_tls_failed(struct svm_conn *c, short what, char *why, size_t len)
{
	SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
	unsigned long e, first = 0;
	long v;

	if (svm_opt.tls_off)
		return 0;
	/*
	 * libevent keeps SSL_get_error()'s code, then OpenSSL's queue, and
	 * hands them back newest first: the earliest OpenSSL error (one with
	 * a library) is the cause.
	 */
	while ((e = bufferevent_get_openssl_error(c->bev)) != 0)
		if (ERR_GET_LIB(e) != 0)
			first = e;
	if (first == 0 && c->tls_up)
		return 0;
	if (first != 0) {
		v = ssl != NULL ? SSL_get_verify_result(ssl) : X509_V_OK;
		snprintf(why, len, "TLS %s: %s%s%s%s", c->tls_up ? "error" :
		    "handshake failed", svm_tls_reason(first),
		    v != X509_V_OK ? " (" : "",
		    v != X509_V_OK ? X509_verify_cert_error_string(v) : "",
		    v != X509_V_OK ? ")" : "");
	} else if (what & BEV_EVENT_EOF)
		snprintf(why, len, "TLS handshake failed: closed by the MUX");
	else
		snprintf(why, len, "TLS handshake failed: %s",
		    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	svm_stats.tls_errors++;
	if (svm_tls_logged++ < SVM_TLS_LOG_MAX)
		svm_warn("conn %" PRIu64 " %s: %s%s", c->id, c->peer, why,
		    svm_tls_logged == SVM_TLS_LOG_MAX ?
		    " (further TLS failures are only counted)" : "");
	return 1;
}
