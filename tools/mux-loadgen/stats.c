/*
 * stats.c: counters, the latency histogram, the progress line and the final
 * report (text, then with --json one JSON object as the last line).
 *
 * The histogram has a fixed size whatever the run length: values below
 * LG_HIST_SUB (64) get a bucket each, above that every power of two is cut
 * into 64 buckets, so a quantile is off by at most 1/64 and recording
 * costs a few instructions. Quantiles report a bucket's upper edge (never
 * below the truth), capped by the exact maximum.
 *
 * Besides the run's histogram there is one over the VMs without --vm-rate
 * (the calm ones, reported as *_excluding_flooders) and one per VM for
 * --vm-rate VMs (all VMs with --per-vm), so a run can flood one VM and
 * show what that did to the others.
 */
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "loadgen.h"

static const char *const stats_err_names[LG_ERR_COUNT] = {
	[LG_ERR_CONNECT] = "connect",
	[LG_ERR_REJECT] = "reject",
	[LG_ERR_CLOSED] = "closed_by_mux",
	[LG_ERR_DECODE] = "decode",
	[LG_ERR_PROTOCOL] = "protocol",
	[LG_ERR_HANDSHAKE] = "handshake_timeout",
	[LG_ERR_HEARTBEAT] = "heartbeat_timeout",
	[LG_ERR_VERDICT] = "verdict_errors",
	[LG_ERR_MISSING] = "missing_verdicts",
	[LG_ERR_EARLY_TIMEOUT] = "early_timeout",
	[LG_ERR_SEND] = "send",
	[LG_ERR_NEVER_CONNECTED] = "never_connected",
};

static const char *const stats_remediation_names[] = {
	[MUX__REMEDIATION_KIND__DELETE] = "delete",
	[MUX__REMEDIATION_KIND__QUARANTINE] = "quarantine",
	[MUX__REMEDIATION_KIND__DENY_ACCESS] = "deny_access",
};

static int stats_progress_shown;

static unsigned
stats_hist_bucket(uint64_t v)
{
	unsigned msb, shift;

	if (v < LG_HIST_SUB)
		return (unsigned)v;
	msb = 63 - (unsigned)__builtin_clzll(v);
	shift = msb - LG_HIST_SUB_BITS;
	return (msb - LG_HIST_SUB_BITS + 1) * LG_HIST_SUB +
	    (unsigned)((v >> shift) & (LG_HIST_SUB - 1));
}

/* Largest value that falls into bucket b. */
static uint64_t
stats_hist_upper(unsigned b)
{
	unsigned shift;
	uint64_t low;

	if (b < LG_HIST_SUB)
		return b;
	shift = b / LG_HIST_SUB - 1;
	low = (uint64_t)(LG_HIST_SUB + b % LG_HIST_SUB) << shift;
	return low + ((UINT64_C(1) << shift) - 1);
}

void
stats_hist_add(struct lg_hist *h, uint64_t v)
{
	h->b[stats_hist_bucket(v)]++;
	h->count++;
	if (v > h->max)
		h->max = v;
}

uint64_t
stats_hist_quantile(const struct lg_hist *h, double q)
{
	uint64_t rank, seen = 0, up;
	unsigned b;

	if (h->count == 0)
		return 0;
	rank = (uint64_t)ceil(q * (double)h->count);
	if (rank < 1)
		rank = 1;
	for (b = 0; b < LG_HIST_BUCKETS; b++) {
		seen += h->b[b];
		if (seen >= rank) {
			up = stats_hist_upper(b);
			return up < h->max ? up : h->max;
		}
	}
	return h->max;
}

void
stats_error(enum lg_err kind)
{
	lg_stats.errors[kind]++;
}

uint64_t
stats_errors_total(void)
{
	uint64_t n = 0;
	int i;

	for (i = 0; i < LG_ERR_COUNT; i++)
		n += lg_stats.errors[i];
	return n;
}

const char *
stats_error_name(enum lg_err kind)
{
	return stats_err_names[kind];
}

void
stats_verdict(struct lg_vm *vm, int action, const char *reason,
    int timed_out, uint64_t latency_ns)
{
	struct lg_stats *s = &lg_stats;
	unsigned i;

	if (reason == NULL)
		reason = "";
	s->verdicts++;
	vm->verdicts++;
	if (action == MUX__ACTION__ALLOW) {
		s->allow++;
		vm->allow++;
	} else {
		s->deny++;
		vm->deny++;
	}
	if (timed_out) {
		s->timed_out++;
		vm->timed_out++;
	}
	if (strcmp(reason, "flood") == 0) {
		s->flood++;
		vm->flood++;
	}
	stats_hist_add(&s->latency, latency_ns);
	if (!vm->override)
		stats_hist_add(&s->latency_calm, latency_ns);
	if (vm->latency != NULL)
		stats_hist_add(vm->latency, latency_ns);
	for (i = 0; i < s->nreasons; i++) {
		if (strcmp(s->reasons[i].name, reason) == 0) {
			s->reasons[i].n++;
			return;
		}
	}
	/* A MUX that invents reasons must not grow this: fold into "other". */
	if (s->nreasons == LG_REASONS_MAX || strlen(reason) >= LG_REASON_LEN) {
		s->reasons_other++;
		return;
	}
	strcpy(s->reasons[s->nreasons].name, reason);
	s->reasons[s->nreasons++].n = 1;
}

static double
stats_us(uint64_t ns)
{
	return (double)ns / 1000.0;
}

void
stats_progress(double elapsed_s)
{
	static uint64_t last_sent;
	static double last_s;
	double rate = 0;

	if (elapsed_s > last_s)
		rate = (double)(lg_stats.sent - last_sent) / (elapsed_s - last_s);
	last_sent = lg_stats.sent;
	last_s = elapsed_s;
	fprintf(stderr, "\r\033[K%6.1fs %s sent %llu  %.0f ev/s  verdicts %llu"
	    "  p99 %.0fus  errors %llu", elapsed_s,
	    lg_phase == LG_START ? "start" : lg_phase == LG_RUN ? "run" :
	    "drain",
	    (unsigned long long)lg_stats.sent, rate,
	    (unsigned long long)lg_stats.verdicts,
	    stats_us(stats_hist_quantile(&lg_stats.latency, 0.99)),
	    (unsigned long long)stats_errors_total());
	stats_progress_shown = 1;
}

/* Take the progress line off the terminal before other output. */
void
stats_progress_end(void)
{
	if (stats_progress_shown)
		fputs("\r\033[K", stderr);
	stats_progress_shown = 0;
}

static void
stats_json_string(FILE *f, const char *s)
{
	const unsigned char *p;

	fputc('"', f);
	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

/* Sum of the VMs' rates: --rate plus what --vm-rate added. */
static double
stats_target_rate(void)
{
	double r = 0;
	uint32_t i;

	for (i = 0; i < lg_nvms; i++)
		r += lg_vms[i].rate;
	return r;
}

/* The VMs reported one by one: --vm-rate ones, or all with --per-vm. */
static int
stats_vm_reported(const struct lg_vm *vm)
{
	return vm->latency != NULL;
}

static void
stats_text_vms(FILE *f, double run_s)
{
	const struct lg_vm *vm;
	uint32_t i;

	for (i = 0; i < lg_nvms; i++) {
		vm = &lg_vms[i];
		if (!stats_vm_reported(vm))
			continue;
		fprintf(f, "  cid %-6u %s%.0f ev/s: sent %llu (%.1f ev/s), "
		    "%llu reply, %llu verdicts (%llu flood, %llu deny, %llu "
		    "timed out), %llu missing; p50 %.1f p99 %.1f us\n", vm->cid,
		    vm->override ? "--vm-rate " : "",
		    vm->rate, (unsigned long long)vm->sent,
		    run_s > 0 ? (double)vm->sent / run_s : 0.0,
		    (unsigned long long)vm->reply_expected,
		    (unsigned long long)vm->verdicts,
		    (unsigned long long)vm->flood,
		    (unsigned long long)vm->deny,
		    (unsigned long long)vm->timed_out,
		    (unsigned long long)vm->missing,
		    stats_us(stats_hist_quantile(vm->latency, 0.50)),
		    stats_us(stats_hist_quantile(vm->latency, 0.99)));
	}
}

static void
stats_text(FILE *f, double run_s)
{
	const struct lg_stats *s = &lg_stats;
	const struct lg_hist *h = &s->latency;
	unsigned i;
	int c;

	fprintf(f, "mux-loadgen %s: %s, %u VM(s) x %u connection(s)\n",
	    MUX_VERSION, lg_opts.connect, lg_opts.agents, lg_opts.conns_per_vm);
	fprintf(f, "run         %.2f s, target %.0f events/s, achieved %.1f "
	    "events/s\n", run_s, stats_target_rate(),
	    run_s > 0 ? (double)s->sent / run_s : 0.0);
	fprintf(f, "connections %llu welcomed (%llu sessions, %llu redials, "
	    "%llu connect errors, %llu rejects, %llu disconnects)\n",
	    (unsigned long long)s->connections,
	    (unsigned long long)s->sessions, (unsigned long long)s->redials,
	    (unsigned long long)s->connect_errors,
	    (unsigned long long)s->rejects,
	    (unsigned long long)s->disconnects);
	if (s->rejects != 0)
		fprintf(f, "  last reject %s\n", s->last_reject);
	fprintf(f, "sent        %llu events in %llu frames, %llu with "
	    "reply_expected\n", (unsigned long long)s->sent,
	    (unsigned long long)s->frames,
	    (unsigned long long)s->reply_expected);
	for (c = MUX__EVENT_CLASS__FILE; c <= MUX__EVENT_CLASS__LOGIN; c++)
		fprintf(f, "  %-10s%llu\n", wire_class_name(c),
		    (unsigned long long)s->sent_by_class[c]);
	fprintf(f, "verdicts    %llu: allow %llu, deny %llu, timed out %llu\n",
	    (unsigned long long)s->verdicts, (unsigned long long)s->allow,
	    (unsigned long long)s->deny, (unsigned long long)s->timed_out);
	for (i = 0; i < s->nreasons; i++)
		fprintf(f, "  reason %-20s %llu\n",
		    s->reasons[i].name[0] != '\0' ? s->reasons[i].name : "(none)",
		    (unsigned long long)s->reasons[i].n);
	if (s->reasons_other != 0)
		fprintf(f, "  reason %-20s %llu\n", "(other)",
		    (unsigned long long)s->reasons_other);
	fprintf(f, "latency us  p50 %.1f  p90 %.1f  p99 %.1f  max %.1f\n",
	    stats_us(stats_hist_quantile(h, 0.50)),
	    stats_us(stats_hist_quantile(h, 0.90)),
	    stats_us(stats_hist_quantile(h, 0.99)), stats_us(h->max));
	if (lg_opts.nvm_rates != 0) {
		h = &s->latency_calm;
		fprintf(f, "  without --vm-rate VMs  p50 %.1f  p90 %.1f  p99 %.1f"
		    "  max %.1f\n", stats_us(stats_hist_quantile(h, 0.50)),
		    stats_us(stats_hist_quantile(h, 0.90)),
		    stats_us(stats_hist_quantile(h, 0.99)), stats_us(h->max));
	}
	stats_text_vms(f, run_s);
	fprintf(f, "requests    %llu file reads (%llu bytes, %llu at eof, "
	    "%llu EINVAL, %llu ENOENT), %llu remediations (",
	    (unsigned long long)s->file_reads,
	    (unsigned long long)s->file_read_bytes,
	    (unsigned long long)s->file_read_eofs,
	    (unsigned long long)s->file_read_einval,
	    (unsigned long long)s->file_read_enoent,
	    (unsigned long long)s->remediations);
	for (i = MUX__REMEDIATION_KIND__DELETE;
	    i <= MUX__REMEDIATION_KIND__DENY_ACCESS; i++)
		fprintf(f, "%s%s %llu", i == MUX__REMEDIATION_KIND__DELETE ?
		    "" : ", ", stats_remediation_names[i],
		    (unsigned long long)s->remediations_by_kind[i]);
	fprintf(f, ", %llu failed)\n",
	    (unsigned long long)s->remediations_failed);
	fprintf(f, "solutions   %llu updates, generation %llu: %s\n",
	    (unsigned long long)s->solution_updates,
	    (unsigned long long)s->solution_generation,
	    s->solutions[0] != '\0' ? s->solutions : "(none)");
	fprintf(f, "heartbeats  %llu sent, %llu received\n",
	    (unsigned long long)s->heartbeats_sent,
	    (unsigned long long)s->heartbeats_received);
	fprintf(f, "shed        %llu back-pressure skips (%llu events), %llu "
	    "replies not asked (pending full), %llu verdicts lost on close\n",
	    (unsigned long long)s->backpressure_skips,
	    (unsigned long long)s->events_skipped,
	    (unsigned long long)s->pending_full,
	    (unsigned long long)s->lost_on_close);
	fprintf(f, "errors      %llu\n",
	    (unsigned long long)stats_errors_total());
	for (i = 0; i < LG_ERR_COUNT; i++)
		if (s->errors[i] != 0)
			fprintf(f, "  %-18s %llu\n", stats_err_names[i],
			    (unsigned long long)s->errors[i]);
}

/* "CID":{...} for each VM reported one by one. */
static void
stats_json_vms(FILE *f, double run_s)
{
	const struct lg_vm *vm;
	const char *sep = "";
	uint32_t i;

	for (i = 0; i < lg_nvms; i++) {
		vm = &lg_vms[i];
		if (!stats_vm_reported(vm))
			continue;
		fprintf(f, "%s\"%u\":{\"vm_rate\":%s,\"target_rate\":%.1f,"
		    "\"sent\":%llu,\"events_per_sec\":%.1f,"
		    "\"reply_expected\":%llu,\"verdicts\":%llu,\"allow\":%llu,"
		    "\"deny\":%llu,\"flood\":%llu,\"timed_out\":%llu,"
		    "\"missing\":%llu,\"lost_on_close\":%llu,"
		    "\"latency_us_p50\":%llu,\"latency_us_p99\":%llu,"
		    "\"latency_us_max\":%llu}", sep, vm->cid,
		    vm->override ? "true" : "false", vm->rate,
		    (unsigned long long)vm->sent,
		    run_s > 0 ? (double)vm->sent / run_s : 0.0,
		    (unsigned long long)vm->reply_expected,
		    (unsigned long long)vm->verdicts,
		    (unsigned long long)vm->allow,
		    (unsigned long long)vm->deny,
		    (unsigned long long)vm->flood,
		    (unsigned long long)vm->timed_out,
		    (unsigned long long)vm->missing,
		    (unsigned long long)vm->lost_on_close,
		    (unsigned long long)(stats_hist_quantile(vm->latency,
		    0.50) / 1000),
		    (unsigned long long)(stats_hist_quantile(vm->latency,
		    0.99) / 1000),
		    (unsigned long long)(vm->latency->max / 1000));
		sep = ",";
	}
}

static void
stats_json(FILE *f, double run_s)
{
	const struct lg_stats *s = &lg_stats;
	const struct lg_hist *h = &s->latency;
	unsigned i;
	int c;

#define U(name, v)	fprintf(f, "\"%s\":%llu,", name, (unsigned long long)(v))
	fputc('{', f);
	U("sent", s->sent);
	U("verdicts", s->verdicts);
	U("errors", stats_errors_total());
	U("missing_verdicts", s->errors[LG_ERR_MISSING]);
	U("verdict_errors", s->errors[LG_ERR_VERDICT]);
	fprintf(f, "\"events_per_sec\":%.1f,",
	    run_s > 0 ? (double)s->sent / run_s : 0.0);
	fprintf(f, "\"run_seconds\":%.3f,", run_s);
	fprintf(f, "\"target_rate\":%.1f,", stats_target_rate());
	U("latency_us_p50", stats_hist_quantile(h, 0.50) / 1000);
	U("latency_us_p90", stats_hist_quantile(h, 0.90) / 1000);
	U("latency_us_p99", stats_hist_quantile(h, 0.99) / 1000);
	U("latency_us_max", h->max / 1000);
	h = &s->latency_calm;
	U("latency_us_p50_excluding_flooders", stats_hist_quantile(h, 0.50) / 1000);
	U("latency_us_p90_excluding_flooders", stats_hist_quantile(h, 0.90) / 1000);
	U("latency_us_p99_excluding_flooders", stats_hist_quantile(h, 0.99) / 1000);
	U("latency_us_max_excluding_flooders", h->max / 1000);
	U("verdicts_excluding_flooders", h->count);
	U("flood", s->flood);
	U("allow", s->allow);
	U("deny", s->deny);
	U("timed_out", s->timed_out);
	U("reply_expected", s->reply_expected);
	U("frames", s->frames);
	U("connections", s->connections);
	U("configured_connections",
	    (uint64_t)lg_opts.agents * lg_opts.conns_per_vm);
	U("sessions", s->sessions);
	U("redials", s->redials);
	U("connect_errors", s->connect_errors);
	U("rejects", s->rejects);
	U("disconnects", s->disconnects);
	U("lost_on_close", s->lost_on_close);
	U("file_reads", s->file_reads);
	U("file_read_bytes", s->file_read_bytes);
	U("file_read_eofs", s->file_read_eofs);
	U("file_read_einval", s->file_read_einval);
	U("file_read_enoent", s->file_read_enoent);
	U("remediations", s->remediations);
	U("remediations_failed", s->remediations_failed);
	U("solution_updates", s->solution_updates);
	U("solution_generation", s->solution_generation);
	U("heartbeats_sent", s->heartbeats_sent);
	U("heartbeats_received", s->heartbeats_received);
	U("backpressure_skips", s->backpressure_skips);
	U("events_skipped", s->events_skipped);
	U("pending_full", s->pending_full);
#undef U
	fputs("\"sent_by_class\":{", f);
	for (c = MUX__EVENT_CLASS__FILE; c <= MUX__EVENT_CLASS__LOGIN; c++)
		fprintf(f, "%s\"%s\":%llu",
		    c == MUX__EVENT_CLASS__FILE ? "" : ",", wire_class_name(c),
		    (unsigned long long)s->sent_by_class[c]);
	fputs("},\"verdicts_by_reason\":{", f);
	for (i = 0; i < s->nreasons; i++) {
		if (i != 0)
			fputc(',', f);
		stats_json_string(f, s->reasons[i].name);
		fprintf(f, ":%llu", (unsigned long long)s->reasons[i].n);
	}
	if (s->reasons_other != 0)
		fprintf(f, "%s\"(other)\":%llu", s->nreasons != 0 ? "," : "",
		    (unsigned long long)s->reasons_other);
	fputs("},\"last_reject\":", f);
	stats_json_string(f, s->last_reject);
	fputs(",\"solutions\":", f);
	stats_json_string(f, s->solutions);
	fputs(",\"remediations_by_kind\":{", f);
	for (i = MUX__REMEDIATION_KIND__DELETE;
	    i <= MUX__REMEDIATION_KIND__DENY_ACCESS; i++)
		fprintf(f, "%s\"%s\":%llu", i == MUX__REMEDIATION_KIND__DELETE ?
		    "" : ",", stats_remediation_names[i],
		    (unsigned long long)s->remediations_by_kind[i]);
	fputs("},\"errors_by_kind\":{", f);
	for (i = 0; i < LG_ERR_COUNT; i++)
		fprintf(f, "%s\"%s\":%llu", i == 0 ? "" : ",",
		    stats_err_names[i], (unsigned long long)s->errors[i]);
	/* Last, so that a search for a top-level key never lands in here. */
	fputs("},\"per_vm\":{", f);
	stats_json_vms(f, run_s);
	fputs("}}\n", f);
}

void
stats_report(FILE *f, double run_s, int json)
{
	stats_progress_end();
	stats_text(f, run_s);
	if (json)
		stats_json(f, run_s);
	fflush(f);
}
