/*
 * svm-report.c: the live progress line and the final report.
 *
 * The final report is text for people, then, with --json, one JSON object
 * as the last line on stdout for scripts. Definitions worth knowing:
 *
 *   events_per_sec  received / time from the first to the last delivery
 *                   (idle time before and after a run does not dilute it;
 *                   falls back to the whole run when that span is < 1 ms).
 *   latency_us_*    our CLOCK_REALTIME at processing minus ingest_time_ns,
 *                   per new delivery (duplicates excluded), from a
 *                   log-linear histogram (about 6% resolution; max exact).
 *   gap_events      sum of last_seq - first_seq + 1 over OVERRUN gaps:
 *                   the range, not Gap.count (which may be 0, "unknown",
 *                   and under a filter counts matching events only).
 *                   EPOCH_CHANGED gaps add 0.
 *   epoch, last_seq the resume point of the MUX that registered last.
 *   file_reads      SvmReadFile requests sent; files_read: files read
 *                   whole; file_read_errors: files given up, split by
 *                   cause in file_read_errors_by_errno.
 *   scans           clamd connections started; each ends as one of
 *                   scan_clean, scan_found, scan_errors, scans_abandoned.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "svm.h"

#define NS_PER_S	1e9
#define RATE_MIN_SPAN_NS 1000000u	/* below: the rate is noise */

double
svm_report_rate(void)
{
	uint64_t span = svm_stats.last_rx_ns - svm_stats.first_rx_ns;
	uint64_t run = svm_mono_ns() - svm_stats.start_ns;

	if (svm_stats.received == 0)
		return 0;
	if (svm_stats.received >= 2 && span >= RATE_MIN_SPAN_NS)
		return (double)(svm_stats.received - 1) * NS_PER_S /
		    (double)span;
	return run == 0 ? 0 : (double)svm_stats.received * NS_PER_S /
	    (double)run;
}

static size_t
svm_report_live(void)
{
	struct svm_conn *c;
	size_t n = 0;

	TAILQ_FOREACH(c, &svm_conns, entry)
		if (!c->closing && c->state == SVM_CONN_REGISTERED)
			n++;
	return n;
}

/* One line, rewritten in place every second (stderr is a terminal). */
void
svm_report_progress(void)
{
	static uint64_t prev_received, prev_ns;
	uint64_t now = svm_mono_ns();
	double rate = 0;
	char lag[32];

	if (prev_ns == 0)
		prev_ns = svm_stats.start_ns;
	if (now > prev_ns)
		rate = (double)(svm_stats.received - prev_received) *
		    NS_PER_S / (double)(now - prev_ns);
	/* Lag of the newest delivery; a stale one would mislead when idle. */
	if (svm_stats.received != prev_received)
		snprintf(lag, sizeof(lag), "%.1f ms",
		    (double)svm_stats.last_latency_us / 1000.0);
	else
		snprintf(lag, sizeof(lag), "-");
	prev_received = svm_stats.received;
	prev_ns = now;
	fprintf(stderr, "\r\033[Kreceived %" PRIu64 "  %.0f ev/s  gaps %" PRIu64
	    " (%" PRIu64 " events)  holes %" PRIu64 "  lag %s  conns %zu",
	    svm_stats.received, rate, svm_stats.gaps, svm_stats.gap_events,
	    svm_stats.holes, lag, svm_report_live());
	fflush(stderr);
}

static void
svm_report_json_string(FILE *f, const char *s)
{
	const unsigned char *p;

	fputc('"', f);
	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p < 0x20)
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

static void
svm_report_json_files(FILE *f)
{
	const struct svm_stats *s = &svm_stats;
	int i;

	fprintf(f, ",\"read_files\":%s,\"remediate\":",
	    svm_opt.read_dir != NULL ? "true" : "false");
	svm_report_json_string(f, svm_opt.remediate.kind != 0 ?
	    svm_opt.remediate.name : "");
	fprintf(f, ",\"file_jobs\":%" PRIu64 ",\"file_jobs_skipped\":%" PRIu64
	    ",\"file_jobs_abandoned\":%" PRIu64 ",\"redelivered\":%" PRIu64
	    ",\"file_reads\":%" PRIu64 ",\"file_read_bytes\":%" PRIu64
	    ",\"files_read\":%" PRIu64 ",\"file_read_errors\":%" PRIu64
	    ",\"file_read_errors_by_errno\":{", s->file_jobs,
	    s->file_jobs_skipped, s->file_jobs_abandoned, s->redelivered,
	    s->file_reads, s->file_read_bytes, s->files_read,
	    s->file_read_errors);
	for (i = 0; i < SVM_READ_ERR_N; i++)
		fprintf(f, "%s\"%s\":%" PRIu64, i > 0 ? "," : "",
		    svm_read_err_name(i), s->file_read_errno[i]);
	fprintf(f, "},\"file_read_retries\":%" PRIu64 ",\"file_read_pauses\":%"
	    PRIu64 ",\"file_data_unknown\":%" PRIu64 ",\"files_written\":%"
	    PRIu64 ",\"file_write_errors\":%" PRIu64, s->file_read_retries,
	    s->file_read_pauses, s->file_data_unknown, s->files_written,
	    s->file_write_errors);
	fprintf(f, ",\"scans\":%" PRIu64 ",\"scan_found\":%" PRIu64
	    ",\"scan_clean\":%" PRIu64 ",\"scan_errors\":%" PRIu64
	    ",\"scans_abandoned\":%" PRIu64, s->scans, s->scan_found,
	    s->scan_clean, s->scan_errors, s->scans_abandoned);
	fprintf(f, ",\"remediations_sent\":%" PRIu64 ",\"remediation_ok\":%"
	    PRIu64 ",\"remediation_failed\":%" PRIu64
	    ",\"remediations_skipped\":%" PRIu64
	    ",\"action_results_unknown\":%" PRIu64, s->remediations_sent,
	    s->remediation_ok, s->remediation_failed, s->remediations_skipped,
	    s->action_results_unknown);
}

/* Only what happened: a run without file work keeps its short report. */
static void
svm_report_text_files(FILE *f)
{
	const struct svm_stats *s = &svm_stats;
	const char *sep = "";
	int i;

	if (s->file_jobs != 0 || s->file_jobs_skipped != 0) {
		fprintf(f, "  files         %" PRIu64 " jobs (%" PRIu64
		    " skipped, %" PRIu64 " abandoned, %" PRIu64
		    " redelivered), %" PRIu64 " read whole, %" PRIu64
		    " written\n", s->file_jobs, s->file_jobs_skipped,
		    s->file_jobs_abandoned, s->redelivered, s->files_read,
		    s->files_written);
		fprintf(f, "  file reads    %" PRIu64 " requests, %" PRIu64
		    " bytes, %" PRIu64 " retries, %" PRIu64 " pauses, %" PRIu64
		    " errors", s->file_reads, s->file_read_bytes,
		    s->file_read_retries, s->file_read_pauses,
		    s->file_read_errors);
		for (i = 0; i < SVM_READ_ERR_N; i++) {
			if (s->file_read_errno[i] == 0)
				continue;
			fprintf(f, "%s%s %" PRIu64, *sep == '\0' ? " (" : ", ",
			    svm_read_err_name(i), s->file_read_errno[i]);
			sep = ")";
		}
		fprintf(f, "%s; %" PRIu64 " write errors, %" PRIu64
		    " unknown FileData\n", sep, s->file_write_errors,
		    s->file_data_unknown);
	}
	if (svm_opt.policy.kind == SVM_POLICY_SCAN)
		fprintf(f, "  scans         %" PRIu64 " (%" PRIu64 " found, %"
		    PRIu64 " clean, %" PRIu64 " errors, %" PRIu64
		    " abandoned)\n", s->scans, s->scan_found, s->scan_clean,
		    s->scan_errors, s->scans_abandoned);
	if (svm_opt.remediate.kind != 0)
		fprintf(f, "  remediation   %s: %" PRIu64 " sent, %" PRIu64
		    " ok, %" PRIu64 " failed, %" PRIu64 " skipped\n",
		    svm_opt.remediate.name, s->remediations_sent,
		    s->remediation_ok, s->remediation_failed,
		    s->remediations_skipped);
}

static void
svm_report_json(FILE *f, double rate, double elapsed)
{
	const struct svm_stats *s = &svm_stats;
	const struct svm_resume *r = svm_state_latest();

	fprintf(f, "{\"service_id\":");
	svm_report_json_string(f, svm_opt.service_id);
	fprintf(f, ",\"instance_id\":");
	svm_report_json_string(f, svm_opt.instance_id);
	fprintf(f, ",\"policy\":\"%s\"", svm_policy_name(&svm_opt.policy));
	fprintf(f, ",\"received\":%" PRIu64 ",\"gaps\":%" PRIu64
	    ",\"gap_events\":%" PRIu64 ",\"holes\":%" PRIu64
	    ",\"holes_checked\":%s,\"order_errors\":%" PRIu64
	    ",\"duplicates\":%" PRIu64 ",\"gap_overlaps\":%" PRIu64
	    ",\"epoch_changes\":%" PRIu64,
	    s->received, s->gaps, s->gap_events, s->holes,
	    svm_check_holes_checked() ? "true" : "false", s->order_errors,
	    s->duplicates, s->gap_overlaps, s->epoch_changes);
	fprintf(f, ",\"batches\":%" PRIu64 ",\"reply_expected\":%" PRIu64
	    ",\"verdicts_sent\":%" PRIu64 ",\"deny_sent\":%" PRIu64
	    ",\"verdicts_dropped\":%" PRIu64 ",\"acks_sent\":%" PRIu64
	    ",\"heartbeats_sent\":%" PRIu64 ",\"heartbeats_received\":%"
	    PRIu64, s->batches, s->reply_expected, s->verdicts_sent,
	    s->deny_sent, s->verdicts_dropped, s->acks_sent,
	    s->heartbeats_sent, s->heartbeats_received);
	fprintf(f, ",\"vm_status\":%" PRIu64 ",\"vms_known\":%zu"
	    ",\"vms_connected\":%zu,\"file_data\":%" PRIu64
	    ",\"action_results\":%" PRIu64, s->vm_status, svm_vm_known(),
	    svm_vm_connected(), s->file_data, s->action_results);
	fprintf(f, ",\"connections\":%" PRIu64 ",\"connections_refused\":%"
	    PRIu64 ",\"registered\":%" PRIu64 ",\"rejects\":%" PRIu64
	    ",\"protocol_errors\":%" PRIu64 ",\"timeouts\":%" PRIu64
	    ",\"tls\":%s,\"tls_errors\":%" PRIu64,
	    s->connections, s->connections_refused, s->registered, s->rejects,
	    s->protocol_errors, s->timeouts, svm_opt.tls_off ? "false" : "true",
	    s->tls_errors);
	svm_report_json_files(f);
	fprintf(f, ",\"events_per_sec\":%.1f,\"latency_us_p50\":%" PRIu64
	    ",\"latency_us_p99\":%" PRIu64 ",\"latency_us_max\":%" PRIu64
	    ",\"elapsed_s\":%.3f,\"mux_hosts\":%zu,\"epoch\":%" PRIu64
	    ",\"last_seq\":%" PRIu64 "}\n", rate,
	    svm_hist_quantile(&s->latency, 0.50),
	    svm_hist_quantile(&s->latency, 0.99), s->latency.max, elapsed,
	    svm_state_count(), r != NULL ? r->epoch : 0,
	    r != NULL ? r->last : 0);
}

void
svm_report_final(FILE *f)
{
	const struct svm_stats *s = &svm_stats;
	const struct svm_resume *r;
	double rate = svm_report_rate();
	double elapsed = (double)(svm_mono_ns() - s->start_ns) / NS_PER_S;

	fprintf(f, "mux-svm %s/%s: policy %s, ran %.1f s\n",
	    svm_opt.service_id, svm_opt.instance_id,
	    svm_policy_name(&svm_opt.policy), elapsed);
	fprintf(f, "  received      %" PRIu64 " in %" PRIu64 " batches, "
	    "%.1f events/s, %" PRIu64 " reply_expected\n", s->received,
	    s->batches, rate, s->reply_expected);
	fprintf(f, "  gaps          %" PRIu64 " (%" PRIu64 " events lost, %"
	    PRIu64 " epoch changes)\n", s->gaps, s->gap_events,
	    s->epoch_changes);
	if (svm_check_holes_checked())
		fprintf(f, "  holes         %" PRIu64 "\n", s->holes);
	else
		fprintf(f, "  holes         not checked (filtered "
		    "subscription)\n");
	fprintf(f, "  order errors  %" PRIu64 ", duplicates %" PRIu64
	    ", gap overlaps %" PRIu64 "\n", s->order_errors, s->duplicates,
	    s->gap_overlaps);
	fprintf(f, "  latency us    p50 %" PRIu64 ", p99 %" PRIu64 ", max %"
	    PRIu64 "\n", svm_hist_quantile(&s->latency, 0.50),
	    svm_hist_quantile(&s->latency, 0.99), s->latency.max);
	fprintf(f, "  sent          %" PRIu64 " verdicts (%" PRIu64 " deny, %"
	    PRIu64 " dropped), %" PRIu64 " acks, %" PRIu64 " heartbeats\n",
	    s->verdicts_sent, s->deny_sent, s->verdicts_dropped, s->acks_sent,
	    s->heartbeats_sent);
	fprintf(f, "  connections   %" PRIu64 " (%" PRIu64 " registered, %"
	    PRIu64 " rejected, %" PRIu64 " protocol errors, %" PRIu64
	    " timeouts, %" PRIu64 " refused; %s, %" PRIu64 " TLS errors)\n",
	    s->connections, s->registered, s->rejects, s->protocol_errors,
	    s->timeouts, s->connections_refused, svm_opt.tls_off ? "plain TCP" :
	    "TLS 1.3", s->tls_errors);
	fprintf(f, "  vm status     %" PRIu64 " messages, %zu VMs known, %zu "
	    "connected; file data %" PRIu64 ", action results %" PRIu64 "\n",
	    s->vm_status, svm_vm_known(), svm_vm_connected(), s->file_data,
	    s->action_results);
	svm_report_text_files(f);
	if ((r = svm_state_latest()) != NULL)
		fprintf(f, "  resume point  epoch %" PRIu64 ", last seq %" PRIu64
		    " (host_id \"%s\", %zu MUX hosts known)\n", r->epoch,
		    r->last, r->host_id, svm_state_count());
	if (svm_opt.json)
		svm_report_json(f, rate, elapsed);
	fflush(f);
}
