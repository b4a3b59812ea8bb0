/*
 * reload.c: configuration reload and run-time [svm] entries, on the main
 * thread.
 *
 * The new file is parsed into a fresh struct; a bad one changes nothing
 * (the running configuration stays, an alarm says why). A good one is
 * copied to the last-good file, then applied where that is safe while
 * running: [svm] entries are added and removed (the fan-out thread
 * dials or drops them), the per-VM limits go to the ingest thread, the log
 * level changes at once. Keys that shape sockets, memory or threads
 * (transport, paths, ring, frames, TLS files, timeouts, batching, ...)
 * need a restart; the reply and the log name them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "mux.h"

static void
post_svm(struct mux *mux, enum mbox_type type, const struct svm_entry *e)
{
	struct mbox_msg *m = mbox_msg_new(type, sizeof(*e));

	memcpy(m->data, e, sizeof(*e));
	mbox_post(&mux->to_fanout, m);
}

static ssize_t
svm_index(const struct mux *mux, const char *name)
{
	size_t i;

	for (i = 0; i < mux->nsvms_now; i++)
		if (strcmp(mux->svms_now[i].name, name) == 0)
			return (ssize_t)i;
	return -1;
}

int
reload_svm_add(struct mux *mux, const struct config_svm *c, char *fail, size_t len)
{
	struct svm_entry e;
	char err[320];

	if (svm_index(mux, c->name) >= 0) {
		snprintf(fail, len, "[svm %s] exists already", c->name);
		return -1;
	}
	if (mux->nsvms_now == CONFIG_SVMS_MAX) {
		snprintf(fail, len, "at most %d [svm] entries", CONFIG_SVMS_MAX);
		return -1;
	}
	if (c->tls && !mux->tls_ready) {
		snprintf(fail, len, "[svm %s] wants TLS but this muxd started without "
		    "[tls] ca, cert and key: restart with them, or tls=off", c->name);
		return -1;
	}
	memset(&e, 0, sizeof(e));
	e.conf = *c;
	if (svm_resolve(c->address, &e.sa, &e.salen, err, sizeof(err)) == -1) {
		snprintf(fail, len, "[svm %s]: %s", c->name, err);
		return -1;
	}
	mux->svms_now[mux->nsvms_now++] = *c;
	post_svm(mux, MBOX_SVM_ADD, &e);
	log_info("svm %s (%s): added (service %s, tls %s)", c->name, c->address,
	    c->service_id, c->tls ? "on" : "off");
	return 0;
}

int
reload_svm_remove(struct mux *mux, const char *name, char *fail, size_t len)
{
	ssize_t i = svm_index(mux, name);

	if (i < 0) {
		snprintf(fail, len, "no [svm %s]", name);
		return -1;
	}
	{
		struct svm_entry e;

		memset(&e, 0, sizeof(e));
		e.conf = mux->svms_now[i];
		post_svm(mux, MBOX_SVM_REMOVE, &e);
	}
	log_info("svm %s (%s): removed", name, mux->svms_now[i].address);
	mux->svms_now[i] = mux->svms_now[--mux->nsvms_now];
	return 0;
}

static int
svm_same(const struct config_svm *a, const struct config_svm *b)
{
	return strcmp(a->address, b->address) == 0 &&
	    strcmp(a->service_id, b->service_id) == 0 && a->tls == b->tls &&
	    strcmp(a->server_name, b->server_name) == 0;
}

/* Appends the name of every key that changed but needs a restart. */
static void
restart_keys(const struct config *o, const struct config *n, char *buf, size_t len)
{
#define KEY(cond, name) do {						\
	if (cond) {							\
		strncat(buf, buf[0] ? ", " name : name,			\
		    len - strlen(buf) - 1);				\
	}								\
} while (0)
	buf[0] = '\0';
	KEY(strcmp(o->host_id, n->host_id) != 0, "host_id");
	KEY(o->transport != n->transport, "transport");
	KEY(o->agent_port != n->agent_port, "agent_port");
	KEY(strcmp(o->agent_path, n->agent_path) != 0, "agent_path");
	KEY(strcmp(o->control_path, n->control_path) != 0, "control_path");
	KEY(o->fail_closed != n->fail_closed, "fail_closed");
	KEY(o->verdict_timeout_ms != n->verdict_timeout_ms, "verdict_timeout_ms");
	KEY(o->heartbeat_ms != n->heartbeat_ms, "heartbeat_ms");
	KEY(strcmp(o->vm_map, n->vm_map) != 0, "vm_map");
	KEY(o->agent_max_frame != n->agent_max_frame, "agent_max_frame");
	KEY(o->svm_max_frame != n->svm_max_frame, "svm_max_frame");
	KEY(o->ring_bytes != n->ring_bytes, "ring_bytes");
	KEY(o->ring_events != n->ring_events, "ring_events");
	KEY(o->max_agents != n->max_agents, "max_agents");
	KEY(o->agent_max_connections_per_vm != n->agent_max_connections_per_vm,
	    "agent_max_connections_per_vm");
	KEY(o->slow_svm != n->slow_svm, "slow_svm");
	KEY(o->svm_window != n->svm_window, "svm_window");
	KEY(o->batch_max_events != n->batch_max_events, "batch_max_events");
	KEY(o->batch_max_bytes != n->batch_max_bytes, "batch_max_bytes");
	KEY(o->batch_linger_us != n->batch_linger_us, "batch_linger_us");
	KEY(strcmp(o->tls_ca, n->tls_ca) != 0, "[tls] ca");
	KEY(strcmp(o->tls_cert, n->tls_cert) != 0, "[tls] cert");
	KEY(strcmp(o->tls_key, n->tls_key) != 0, "[tls] key");
	KEY(strcmp(o->metrics_listen, n->metrics_listen) != 0, "[metrics] listen");
#undef KEY
}

int
reload_config(struct mux *mux, struct evbuffer *out, char *fail, size_t len)
{
	struct config *n;
	struct mbox_msg *m;
	struct limits_msg *lm;
	char err[CONFIG_ERR_MAX + 256], restart[1024];
	size_t i, added = 0, removed = 0, changed = 0;
	ssize_t j;

	if (mux->config_path == NULL) {
		snprintf(fail, len, "muxd started on built-in defaults (no -f): "
		    "nothing to reload");
		return -1;
	}
	if ((n = calloc(1, sizeof(*n))) == NULL)
		fatal("reload");
	if (config_load(mux->config_path, n, err, sizeof(err)) == -1) {
		log_error("reload: %s; the running configuration stays", err);
		snap_alarm(&mux->snap, "reload refused: %s", err);
		snprintf(fail, len, "%s; the running configuration stays", err);
		free(n);
		return -1;
	}
	/* Refuse what could not be applied before applying anything. */
	for (i = 0; i < n->nsvms; i++)
		if (n->svms[i].tls && !mux->tls_ready) {
			snprintf(fail, len, "[svm %s] wants TLS but this muxd started "
			    "without [tls]: restart to use it", n->svms[i].name);
			free(n);
			return -1;
		}
	if (config_write_last_good(mux->config_path, err, sizeof(err)) == -1)
		log_warnx("reload: %s", err);

	/* [svm]: count first, then removed or changed entries go, new or
	 * changed ones come (a changed entry is redialled from scratch). */
	for (i = 0; i < n->nsvms; i++) {
		j = svm_index(mux, n->svms[i].name);
		if (j < 0)
			added++;
		else if (!svm_same(&n->svms[i], &mux->svms_now[j]))
			changed++;
	}
	for (i = 0; i < mux->nsvms_now; i++)
		if (config_svm_find(n, mux->svms_now[i].name) == NULL)
			removed++;
	for (i = 0; i < mux->nsvms_now;) {
		const struct config_svm *c = config_svm_find(n, mux->svms_now[i].name);

		if (c != NULL && svm_same(c, &mux->svms_now[i]))
			i++;
		else	/* moves the last entry into slot i */
			reload_svm_remove(mux, mux->svms_now[i].name, err, sizeof(err));
	}
	for (i = 0; i < n->nsvms; i++)
		if (svm_index(mux, n->svms[i].name) < 0 &&
		    reload_svm_add(mux, &n->svms[i], err, sizeof(err)) == -1) {
			log_error("reload: %s", err);
			evbuffer_add_printf(out, "not added: %s\n", err);
		}

	/* Per-VM limits: the ingest thread keeps its own copy. */
	m = mbox_msg_new(MBOX_LIMITS, sizeof(*lm));
	lm = (struct limits_msg *)m->data;
	lm->events_per_sec = n->agent_max_events_per_sec;
	lm->bytes_per_sec = n->agent_max_bytes_per_sec;
	lm->pending_verdicts = n->agent_max_pending_verdicts;
	mbox_post(&mux->to_ingest, m);
	log_set_level(n->log_level);

	restart_keys(&mux->conf, n, restart, sizeof(restart));
	log_info("reload: %s: svm entries %zu added, %zu removed, %zu changed; "
	    "limits and log level applied%s%s", mux->config_path, added, removed,
	    changed, restart[0] ? "; needs a restart: " : "", restart);
	evbuffer_add_printf(out, "reloaded %s: svm entries %zu added, %zu removed, "
	    "%zu changed; per-VM limits and log level applied\n",
	    mux->config_path, added, removed, changed);
	if (restart[0] != '\0')
		evbuffer_add_printf(out, "not applied until a restart: %s\n", restart);
	free(n);
	return 0;
}
