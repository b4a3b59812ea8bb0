/*
 * main.c: muxd start-up, the main thread's loop and shutdown.
 *
 *   muxd [-f CONFIG] [-d] [-n] [-v]
 */
#include <sys/resource.h>
#include <sys/stat.h>

#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/thread.h>

#include <openssl/ssl.h>

#include "mux.h"

#define SAMPLE_PERIOD_S	1

static void
usage(void)
{
	fprintf(stderr, "usage: muxd [-f CONFIG] [-d] [-n] [-v]\n"
	    "  -f CONFIG  configuration file (default: built-in defaults)\n"
	    "  -d         stay in the foreground, log to stderr\n"
	    "  -n         check the configuration and exit (0 good, 1 bad)\n"
	    "  -v         more logging (repeat for trace)\n");
	exit(1);
}

/* mkdir -p of a socket's parent folder. */
static int
make_parent(const char *path, char *err, size_t errlen)
{
	char buf[PATH_MAX], *p;

	snprintf(buf, sizeof(buf), "%s", path);
	p = dirname(buf);
	for (char *q = p + 1; *q != '\0'; q++) {
		if (*q != '/')
			continue;
		*q = '\0';
		if (mkdir(p, 0755) == -1 && errno != EEXIST)
			goto fail;
		*q = '/';
	}
	if (mkdir(p, 0755) == -1 && errno != EEXIST)
		goto fail;
	return 0;
fail:
	snprintf(err, errlen, "%s: mkdir: %s", p, strerror(errno));
	return -1;
}

static void
main_signal_cb(evutil_socket_t sig, short ev, void *arg)
{
	struct mux *mux = arg;

	(void)ev;
	if (sig == SIGHUP) {
		struct evbuffer *b = evbuffer_new();
		char fail[CONFIG_ERR_MAX + 512];

		/* The outcome is logged by reload_config; nobody reads b. */
		if (b != NULL) {
			if (reload_config(mux, b, fail, sizeof(fail)) == -1)
				log_error("SIGHUP: %s", fail);
			evbuffer_free(b);
		}
		return;
	}
	log_info("signal %d: shutting down", (int)sig);
	event_base_loopexit(mux->main_base, NULL);
}

/* Rates for `muxctl status`, from 1 s samples of the counters. */
static void
main_sample_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct mux *mux = arg;
	uint64_t now = mono_ns(), in = metrics_received_total();
	uint64_t out = fanout_delivered_total(), dt = now - mux->last_sample;

	(void)fd;
	(void)ev;
	if (dt > 0) {
		mux->rate_in = (in - mux->last_in) * 1000000000u / dt;
		mux->rate_out = (out - mux->last_out) * 1000000000u / dt;
	}
	mux->last_in = in;
	mux->last_out = out;
	mux->last_sample = now;
}

int
main(int argc, char **argv)
{
	static struct mux mux_storage;
	struct mux *mux = &mux_storage;
	struct timeval tv = { SAMPLE_PERIOD_S, 0 };
	struct event *sig_term, *sig_int, *sig_hup, *sample;
	const char *path = NULL;
	int ch, foreground = 0, check = 0, verbose = 0;
	char err[CONFIG_ERR_MAX + 256];
	enum log_level lvl;

	while ((ch = getopt(argc, argv, "f:dnvh")) != -1) {
		switch (ch) {
		case 'f':
			path = optarg;
			break;
		case 'd':
			foreground = 1;
			break;
		case 'n':
			check = 1;
			break;
		case 'v':
			verbose++;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();

	err[0] = '\0';
	if (check) {
		config_defaults(&mux->conf);
		if (path != NULL && config_load(path, &mux->conf, err, sizeof(err)) == -1) {
			fprintf(stderr, "%s\n", err);
			return 1;
		}
		/* What start-up would refuse, -n refuses too: the TLS files. */
		for (size_t i = 0; i < mux->conf.nsvms; i++) {
			struct ssl_ctx_st *tls;

			if (!mux->conf.svms[i].tls)
				continue;
			if ((tls = fanout_tls_context(&mux->conf, err, sizeof(err))) == NULL) {
				fprintf(stderr, "%s: %s\n", path ? path : "(defaults)", err);
				return 1;
			}
			SSL_CTX_free(tls);
			break;
		}
		printf("configuration OK%s%s\n", path ? ": " : " (built-in defaults)",
		    path ? path : "");
		return 0;
	}
	if (config_start(path, &mux->conf, err, sizeof(err)) == -1) {
		fprintf(stderr, "muxd: %s\n", err);
		fprintf(stderr, "muxd: no usable configuration (and no last-good "
		    "copy); not starting\n");
		return 1;
	}
	lvl = mux->conf.log_level;
	if (verbose > 0 && lvl < LOG_LEVEL_TRACE)
		lvl = verbose > 1 ? LOG_LEVEL_TRACE :
		    (lvl < LOG_LEVEL_DEBUG ? LOG_LEVEL_DEBUG : LOG_LEVEL_TRACE);
	log_init(foreground, lvl);
	if (mux->conf.from_last_good) {
		snprintf(mux->config_error, sizeof(mux->config_error), "%s", err);
		log_error("configuration: %s", err);
		log_error("ALARM: running on the last-good copy %s", mux->conf.source);
	} else if (err[0] != '\0')
		log_warnx("configuration: %s", err);

	if (!foreground && daemon(0, 0) == -1)
		fatal("daemon");
	signal(SIGPIPE, SIG_IGN);
	if (evthread_use_pthreads() == -1)
		fatalx("libevent: no pthreads support");

	mux->epoch = 0;
	while (mux->epoch == 0)
		mux->epoch = mux_random64();
	mux->start_ns = now_ns();
	mux->start_mono = mux->last_sample = mono_ns();
	snap_init(&mux->snap);
	if (ring_init(&mux->ring, mux->conf.ring_bytes, mux->conf.ring_events,
	    mux->conf.agent_max_frame + DELIVERY_OVERHEAD, 1) == -1)
		fatalx("ring: cannot allocate %llu bytes / %u events (each must be a "
		    "power of two after rounding, bytes >= 4 records of %u)",
		    (unsigned long long)mux->conf.ring_bytes, mux->conf.ring_events,
		    mux->conf.agent_max_frame + DELIVERY_OVERHEAD);
	if ((mux->main_base = event_base_new()) == NULL)
		fatalx("event_base_new failed");

	if (mux->conf.transport == CONFIG_TRANSPORT_UNIX &&
	    make_parent(mux->conf.agent_path, err, sizeof(err)) == -1)
		fatalx("%s", err);
	if (make_parent(mux->conf.control_path, err, sizeof(err)) == -1)
		fatalx("%s", err);
	if ((mux->ingest = ingest_new(mux, err, sizeof(err))) == NULL)
		fatalx("agents: %s", err);
	if ((mux->fanout = fanout_new(mux, err, sizeof(err))) == NULL)
		fatalx("svms: %s", err);
	mux->config_path = path;
	memcpy(mux->svms_now, mux->conf.svms, sizeof(mux->svms_now));
	mux->nsvms_now = mux->conf.nsvms;
	if (control_start(mux, err, sizeof(err)) == -1)
		fatalx("%s", err);
	if (metrics_http_start(mux, err, sizeof(err)) == -1)
		fatalx("%s", err);

	sig_term = evsignal_new(mux->main_base, SIGTERM, main_signal_cb, mux);
	sig_int = evsignal_new(mux->main_base, SIGINT, main_signal_cb, mux);
	sig_hup = evsignal_new(mux->main_base, SIGHUP, main_signal_cb, mux);
	sample = event_new(mux->main_base, -1, EV_PERSIST, main_sample_cb, mux);
	if (sig_term == NULL || sig_int == NULL || sig_hup == NULL ||
	    sample == NULL)
		fatalx("events");
	evsignal_add(sig_term, NULL);
	evsignal_add(sig_int, NULL);
	evsignal_add(sig_hup, NULL);
	evtimer_add(sample, &tv);

	if (fanout_start(mux->fanout) == -1 || ingest_start(mux->ingest) == -1)
		fatal("pthread_create");
	log_info("muxd %s started: epoch %016llx, host %s, %zu SVM entries, "
	    "ring %llu MiB / %llu events, config %s", MUX_VERSION,
	    (unsigned long long)mux->epoch, mux->conf.host_id, mux->conf.nsvms,
	    (unsigned long long)(mux->ring.bytes >> 20),
	    (unsigned long long)mux->ring.events,
	    mux->conf.source[0] ? mux->conf.source : "(built-in defaults)");

	event_base_dispatch(mux->main_base);

	ingest_stop(mux->ingest);
	fanout_stop(mux->fanout);
	control_stop();
	ingest_free(mux->ingest);
	fanout_free(mux->fanout);
	event_free(sig_term);
	event_free(sig_int);
	event_free(sig_hup);
	event_free(sample);
	event_base_free(mux->main_base);
	ring_free(&mux->ring);
	snap_set_agents(&mux->snap, NULL, 0);
	snap_set_svms(&mux->snap, NULL, 0);
	log_info("muxd stopped");
	return 0;
}
