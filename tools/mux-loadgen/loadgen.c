/*
 * loadgen.c: mux-loadgen's command line, start-up, the run and drain
 * phases, and the exit code (0 only when no error of any kind was seen).
 */
#include <sys/resource.h>

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "muxclock.h"
#include "loadgen.h"

struct event_base	*lg_base;
struct lg_options	 lg_opts;
struct lg_stats		 lg_stats;
enum lg_phase		 lg_phase = LG_START;
FILE			*lg_record;
FILE			*lg_verdict_log;
int			 lg_interrupted;
struct lg_vm		*lg_vms;
uint32_t		 lg_nvms;

static struct agent	*lg_agents;
static uint32_t		 lg_nagents;
static uint64_t		 lg_dial_ns;	/* dials done, START begins */
static uint64_t		 lg_start_ns;	/* RUN begins */
static uint64_t		 lg_run_end_ns;	/* when RUN ended (early or not) */
static uint64_t		 lg_last_tick_ns;
static uint64_t		 lg_drain_deadline_ns;
static struct event	*lg_tick_ev;
static struct event	*lg_progress_ev;
static struct event	*lg_sigint_ev;
static struct event	*lg_sigterm_ev;
static int		 lg_progress;	/* live line on a terminal */
static unsigned		 lg_nlogged;

static const char lg_usage[] =
"usage: mux-loadgen --connect unix:PATH|vsock:CID:PORT [--agents N]\n"
"           [--rate EVENTS_PER_S] [--duration SECONDS] [--json] [--quiet]\n"
"           [--first-cid C] [--connections-per-vm K]\n"
"           [--mix file=60,network=20,process=15,login=5]\n"
"           [--reply-share F] [--batch N] [--payload BYTES] [--record FILE]\n"
"           [--drain-ms MS] [--reconnect] [--seed N]\n"
"           [--file-content FILE_ID_OR_GLOB=PATH ...] [--file-size BYTES]\n"
"           [--vm-rate CID=EVENTS_PER_S ...] [--per-vm]\n"
"           [--reply-events N] [--verdict-log FILE]\n"
"\n"
"Simulated thin agents: N VMs (CIDs from --first-cid), K connections each,\n"
"--rate events/s in total over all connections for --duration seconds,\n"
"then up to --drain-ms for outstanding verdicts, then a report (with\n"
"--json its last line is one JSON object). Exit 0 only without errors.\n"
"--vm-rate gives one VM its own rate; the others share --rate.\n";

uint64_t
loadgen_now_ns(void)
{
	return muxclock_mono_ns();
}

uint64_t
loadgen_realtime_ns(void)
{
	return muxclock_real_ns();
}

/* One line to stderr; a storm of them (1000 agents failing) is cut short. */
void
loadgen_log(const char *fmt, ...)
{
	va_list ap;

	if (lg_opts.quiet)
		return;
	if (lg_nlogged++ >= LG_LOG_MAX) {
		if (lg_nlogged == LG_LOG_MAX + 1) {
			stats_progress_end();
			fprintf(stderr, "mux-loadgen: further messages "
			    "suppressed (see the report)\n");
		}
		return;
	}
	stats_progress_end();
	fputs("mux-loadgen: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void
loadgen_fatalx(const char *fmt, ...)
{
	va_list ap;

	stats_progress_end();
	fputs("mux-loadgen: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void __attribute__((noreturn))
loadgen_usage_exit(const char *fmt, ...)
{
	va_list ap;

	if (fmt != NULL) {
		fputs("mux-loadgen: ", stderr);
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fputc('\n', stderr);
	}
	fputs(lg_usage, stderr);
	exit(2);
}

static uint64_t
loadgen_uint(const char *opt, const char *s, uint64_t min, uint64_t max)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || s[0] == '-' ||
	    v < min || v > max)
		loadgen_usage_exit("%s %s: want an integer in %llu..%llu", opt, s,
		    (unsigned long long)min, (unsigned long long)max);
	return v;
}

static double
loadgen_real(const char *opt, const char *s, double min, double max)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !isfinite(v) ||
	    v < min || v > max)
		loadgen_usage_exit("%s %s: want a number in %g..%g", opt, s, min, max);
	return v;
}

/* "file=60,network=20": listed classes get their weight, others none. */
static void
loadgen_parse_mix(const char *s)
{
	char buf[256], *tok, *save = NULL, *eq;
	int c;

	if (strlen(s) >= sizeof(buf))
		loadgen_usage_exit("--mix: too long");
	strcpy(buf, s);
	memset(lg_opts.mix, 0, sizeof(lg_opts.mix));
	for (tok = strtok_r(buf, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save)) {
		if ((eq = strchr(tok, '=')) == NULL)
			loadgen_usage_exit("--mix %s: want CLASS=WEIGHT", tok);
		*eq = '\0';
		c = wire_class_parse(tok);
		if (c < MUX__EVENT_CLASS__FILE || c > MUX__EVENT_CLASS__LOGIN)
			loadgen_usage_exit("--mix: %s: classes are file, network, "
			    "process, login (VM events are the MUX's)", tok);
		lg_opts.mix[c] = (unsigned)loadgen_uint("--mix", eq + 1, 0,
		    1000000);
	}
}

/* "CID=EVENTS_PER_S"; checked against the VMs of the run later. */
static void
loadgen_parse_vm_rate(const char *s)
{
	char buf[64], *eq;
	unsigned i;
	uint32_t cid;

	if (strlen(s) >= sizeof(buf) || (eq = strchr(s, '=')) == NULL)
		loadgen_usage_exit("--vm-rate %s: want CID=EVENTS_PER_S", s);
	if (lg_opts.nvm_rates == LG_VM_RATES_MAX)
		loadgen_usage_exit("--vm-rate: at most %d of them",
		    LG_VM_RATES_MAX);
	memcpy(buf, s, (size_t)(eq - s));
	buf[eq - s] = '\0';
	cid = (uint32_t)loadgen_uint("--vm-rate", buf, VMCI_CID_MIN,
	    VMCI_CID_MAX);
	for (i = 0; i < lg_opts.nvm_rates; i++)
		if (lg_opts.vm_rates[i].cid == cid)
			loadgen_usage_exit("--vm-rate: CID %u given twice", cid);
	lg_opts.vm_rates[i].cid = cid;
	lg_opts.vm_rates[i].rate = loadgen_real("--vm-rate", eq + 1, 0, 1e9);
	lg_opts.nvm_rates++;
}

enum {
	OPT_FIRST_CID = 256,
	OPT_CONNS_PER_VM,
	OPT_MIX,
	OPT_REPLY_SHARE,
	OPT_BATCH,
	OPT_PAYLOAD,
	OPT_RECORD,
	OPT_DRAIN_MS,
	OPT_FILE_CONTENT,
	OPT_RECONNECT,
	OPT_SEED,
	OPT_VERDICT_LOG,
	OPT_VM_RATE,
	OPT_PER_VM,
	OPT_REPLY_EVENTS,
	OPT_FILE_SIZE,
};

static const struct option lg_longopts[] = {
	{ "connect",		required_argument, NULL, 'c' },
	{ "agents",		required_argument, NULL, 'n' },
	{ "rate",		required_argument, NULL, 'r' },
	{ "duration",		required_argument, NULL, 'd' },
	{ "json",		no_argument,	   NULL, 'j' },
	{ "quiet",		no_argument,	   NULL, 'q' },
	{ "help",		no_argument,	   NULL, 'h' },
	{ "version",		no_argument,	   NULL, 'V' },
	{ "first-cid",		required_argument, NULL, OPT_FIRST_CID },
	{ "connections-per-vm",	required_argument, NULL, OPT_CONNS_PER_VM },
	{ "mix",		required_argument, NULL, OPT_MIX },
	{ "reply-share",	required_argument, NULL, OPT_REPLY_SHARE },
	{ "batch",		required_argument, NULL, OPT_BATCH },
	{ "payload",		required_argument, NULL, OPT_PAYLOAD },
	{ "record",		required_argument, NULL, OPT_RECORD },
	{ "drain-ms",		required_argument, NULL, OPT_DRAIN_MS },
	{ "file-content",	required_argument, NULL, OPT_FILE_CONTENT },
	{ "reconnect",		no_argument,	   NULL, OPT_RECONNECT },
	{ "seed",		required_argument, NULL, OPT_SEED },
	{ "verdict-log",	required_argument, NULL, OPT_VERDICT_LOG },
	{ "vm-rate",		required_argument, NULL, OPT_VM_RATE },
	{ "per-vm",		no_argument,	   NULL, OPT_PER_VM },
	{ "reply-events",	required_argument, NULL, OPT_REPLY_EVENTS },
	{ "file-size",		required_argument, NULL, OPT_FILE_SIZE },
	{ NULL,			0,		   NULL, 0 }
};

static void
loadgen_parse_args(int argc, char **argv)
{
	char err[256];
	unsigned i;
	int ch;

	lg_opts.agents = 1;
	lg_opts.conns_per_vm = 1;
	lg_opts.first_cid = VMCI_CID_MIN;
	lg_opts.rate = 1000;
	lg_opts.duration = 10;
	lg_opts.reply_share = 0.1;
	lg_opts.batch = 64;
	lg_opts.drain_ms = -1;
	lg_opts.seed = 1;
	lg_opts.file_size = LG_FILE_SIZE_HASHED;
	loadgen_parse_mix("file=60,network=20,process=15,login=5");

	while ((ch = getopt_long(argc, argv, "c:n:r:d:jqhV", lg_longopts,
	    NULL)) != -1) {
		switch (ch) {
		case 'c':
			lg_opts.connect = optarg;
			break;
		case 'n':
			lg_opts.agents = (uint32_t)loadgen_uint("--agents",
			    optarg, 1, 1000000);
			break;
		case 'r':
			lg_opts.rate = loadgen_real("--rate", optarg, 0, 1e9);
			break;
		case 'd':
			lg_opts.duration = loadgen_real("--duration", optarg,
			    0, 1e7);
			lg_opts.duration_set = 1;
			break;
		case 'j':
			lg_opts.json = 1;
			break;
		case 'q':
			lg_opts.quiet = 1;
			break;
		case 'h':
			fputs(lg_usage, stdout);
			exit(0);
		case 'V':
			printf("mux-loadgen %s\n", MUX_VERSION);
			exit(0);
		case OPT_FIRST_CID:
			lg_opts.first_cid = (uint32_t)loadgen_uint("--first-cid",
			    optarg, VMCI_CID_MIN, VMCI_CID_MAX);
			break;
		case OPT_CONNS_PER_VM:
			lg_opts.conns_per_vm = (uint32_t)loadgen_uint(
			    "--connections-per-vm", optarg, 1, 1024);
			break;
		case OPT_MIX:
			loadgen_parse_mix(optarg);
			break;
		case OPT_REPLY_SHARE:
			lg_opts.reply_share = loadgen_real("--reply-share",
			    optarg, 0, 1);
			break;
		case OPT_BATCH:
			lg_opts.batch = (uint32_t)loadgen_uint("--batch", optarg,
			    1, LG_BATCH_MAX);
			break;
		case OPT_PAYLOAD:
			lg_opts.payload = (uint32_t)loadgen_uint("--payload",
			    optarg, 0, LG_PAYLOAD_MAX);
			break;
		case OPT_RECORD:
			lg_opts.record = optarg;
			break;
		case OPT_DRAIN_MS:
			lg_opts.drain_ms = (long)loadgen_uint("--drain-ms", optarg,
			    0, 86400000);
			break;
		case OPT_FILE_CONTENT:
			if (content_add_rule(optarg, err, sizeof(err)) == -1)
				loadgen_usage_exit("%s", err);
			break;
		case OPT_RECONNECT:
			lg_opts.reconnect = 1;
			break;
		case OPT_SEED:
			lg_opts.seed = loadgen_uint("--seed", optarg, 0,
			    UINT64_MAX);
			break;
		case OPT_VERDICT_LOG:
			lg_opts.verdict_log = optarg;
			break;
		case OPT_VM_RATE:
			loadgen_parse_vm_rate(optarg);
			break;
		case OPT_PER_VM:
			lg_opts.per_vm = 1;
			break;
		case OPT_REPLY_EVENTS:
			lg_opts.reply_events = loadgen_uint("--reply-events",
			    optarg, 1, UINT64_MAX);
			break;
		case OPT_FILE_SIZE:
			lg_opts.file_size = loadgen_uint("--file-size", optarg,
			    0, LG_FILE_SIZE_MAX);
			break;
		default:
			loadgen_usage_exit(NULL);
		}
	}
	if (optind != argc)
		loadgen_usage_exit("unexpected argument: %s", argv[optind]);
	if (lg_opts.connect == NULL)
		loadgen_usage_exit("--connect is required");
	if (vmci_addr_parse(lg_opts.connect, &lg_opts.addr, err,
	    sizeof(err)) == -1)
		loadgen_usage_exit("--connect %s: %s", lg_opts.connect, err);
	if ((uint64_t)lg_opts.first_cid + lg_opts.agents - 1 > VMCI_CID_MAX)
		loadgen_usage_exit("--first-cid + --agents passes CID %u",
		    VMCI_CID_MAX);
	if ((uint64_t)lg_opts.agents * lg_opts.conns_per_vm > 1000000)
		loadgen_usage_exit("more than 1000000 connections");
	for (i = 0; i < lg_opts.nvm_rates; i++)
		if (lg_opts.vm_rates[i].cid < lg_opts.first_cid ||
		    lg_opts.vm_rates[i].cid - lg_opts.first_cid >= lg_opts.agents)
			loadgen_usage_exit("--vm-rate: CID %u is not one of the "
			    "run's VMs (%u..%u)", lg_opts.vm_rates[i].cid,
			    lg_opts.first_cid,
			    lg_opts.first_cid + lg_opts.agents - 1);
	if (lg_opts.per_vm && lg_opts.agents > LG_PER_VM_MAX)
		loadgen_usage_exit("--per-vm: at most %d VMs", LG_PER_VM_MAX);
	if (lg_opts.reply_events != 0 && lg_opts.reply_share == 0)
		loadgen_usage_exit("--reply-events needs --reply-share above 0");
	/* An exact count is the point: no time limit unless one is asked. */
	if (lg_opts.reply_events != 0 && !lg_opts.duration_set)
		lg_opts.duration = 1e7;
}

/*
 * VMs and their rates: --vm-rate ones get theirs, the others share --rate
 * evenly. Histograms of their own for --vm-rate VMs, and for all with
 * --per-vm.
 */
static void
loadgen_setup_vms(void)
{
	uint32_t i, calm = lg_opts.agents;
	unsigned j;

	if ((lg_vms = calloc(lg_opts.agents, sizeof(*lg_vms))) == NULL)
		loadgen_fatalx("out of memory for %u VMs", lg_opts.agents);
	lg_nvms = lg_opts.agents;
	for (i = 0; i < lg_nvms; i++)
		lg_vms[i].cid = lg_opts.first_cid + i;
	for (j = 0; j < lg_opts.nvm_rates; j++) {
		i = lg_opts.vm_rates[j].cid - lg_opts.first_cid;
		lg_vms[i].override = 1;
		lg_vms[i].rate = lg_opts.vm_rates[j].rate;
		calm--;
	}
	for (i = 0; i < lg_nvms; i++) {
		if (!lg_vms[i].override)
			lg_vms[i].rate = lg_opts.rate / calm;
		if ((lg_vms[i].override || lg_opts.per_vm) &&
		    (lg_vms[i].latency = calloc(1,
		    sizeof(*lg_vms[i].latency))) == NULL)
			loadgen_fatalx("out of memory for VM histograms");
	}
}

/* LG_TICK_MS, or less so that no connection gets over LG_TICK_EVENTS. */
static unsigned
loadgen_tick_ms(void)
{
	double top = 0;
	unsigned ms = LG_TICK_MS;
	uint32_t i;

	for (i = 0; i < lg_nvms; i++)
		if (lg_vms[i].rate / lg_opts.conns_per_vm > top)
			top = lg_vms[i].rate / lg_opts.conns_per_vm;
	while (ms > LG_TICK_MIN_MS && top * ms / 1000 > LG_TICK_EVENTS)
		ms--;
	return ms;
}

static void
loadgen_free_vms(void)
{
	uint32_t i;

	for (i = 0; i < lg_nvms; i++)
		free(lg_vms[i].latency);
	free(lg_vms);
	lg_vms = NULL;
	lg_nvms = 0;
}

/* Every connection is one fd; lift the soft limit as far as allowed. */
static void
loadgen_raise_nofile(uint64_t want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1 || rl.rlim_cur >= want)
		return;
	rl.rlim_cur = rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want ?
	    rl.rlim_max : want;
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1 || rl.rlim_cur < want)
		loadgen_log("only %llu file descriptors for %llu connections",
		    (unsigned long long)rl.rlim_cur, (unsigned long long)want);
}

static void
loadgen_finish(void)
{
	uint32_t i;

	if (lg_phase == LG_DONE)
		return;
	if (lg_run_end_ns == 0)
		lg_run_end_ns = loadgen_now_ns();
	lg_phase = LG_DONE;
	for (i = 0; i < lg_nagents; i++)
		agent_finish(&lg_agents[i]);
	event_base_loopbreak(lg_base);
}

static void
loadgen_enter_drain(uint64_t now)
{
	uint32_t i, vt = 0;
	long ms = lg_opts.drain_ms;

	if (lg_phase > LG_RUN)
		return;
	if (lg_phase == LG_START)
		lg_start_ns = now;
	lg_phase = LG_DRAIN;
	lg_run_end_ns = now;
	if (ms < 0) {
		/* Long enough for the MUX's own timeout to answer for it. */
		for (i = 0; i < lg_nagents; i++)
			if (lg_agents[i].welcomed_once &&
			    lg_agents[i].verdict_timeout_ms > vt)
				vt = lg_agents[i].verdict_timeout_ms;
		if (vt == 0)
			vt = LG_VERDICT_TIMEOUT_DEFAULT;
		ms = (long)vt + LG_DRAIN_SLACK_MS;
	}
	lg_drain_deadline_ns = now + (uint64_t)ms * 1000000;
}

/* Every connection is either ready to generate or stopped for good. */
static int
loadgen_all_settled(void)
{
	uint32_t i;

	for (i = 0; i < lg_nagents; i++)
		if (lg_agents[i].state != AGENT_RUNNING &&
		    lg_agents[i].state != AGENT_DONE)
			return 0;
	return 1;
}

static void
loadgen_tick_cb(evutil_socket_t fd, short events, void *arg)
{
	uint64_t now = loadgen_now_ns();
	double dt;
	uint32_t i, alive = 0;
	int quiet = 1;

	if (lg_phase == LG_START && (loadgen_all_settled() ||
	    now >= lg_dial_ns + (uint64_t)LG_START_WAIT_MS * 1000000)) {
		lg_phase = LG_RUN;
		lg_start_ns = lg_last_tick_ns = now;
	}
	if (lg_phase == LG_RUN && now >= lg_start_ns +
	    (uint64_t)(lg_opts.duration * 1e9))
		loadgen_enter_drain(now);
	/* Met during the last tick; gen.c has made nothing since. */
	if (lg_phase == LG_RUN && lg_opts.reply_events != 0 &&
	    lg_stats.reply_expected >= lg_opts.reply_events)
		loadgen_enter_drain(now);
	dt = (double)(now - lg_last_tick_ns) / 1e9;
	lg_last_tick_ns = now;
	if (dt > LG_CREDIT_MAX_S)
		dt = LG_CREDIT_MAX_S;
	for (i = 0; i < lg_nagents; i++) {
		agent_tick(&lg_agents[i], now,
		    lg_phase == LG_RUN ? lg_agents[i].rate * dt : 0);
		if (lg_agents[i].state != AGENT_DONE)
			alive++;
		if (lg_phase == LG_DRAIN && quiet && !agent_quiet(&lg_agents[i]))
			quiet = 0;
	}
	/* Every connection stopped for good: nothing left to run for. */
	if (alive == 0)
		loadgen_enter_drain(now);
	if (lg_phase == LG_DRAIN && (quiet || now >= lg_drain_deadline_ns))
		loadgen_finish();
}

static void
loadgen_progress_cb(evutil_socket_t fd, short events, void *arg)
{
	stats_progress((double)(loadgen_now_ns() - lg_dial_ns) / 1e9);
}

/* First signal: stop generating and drain. Second: stop now. */
static void
loadgen_signal_cb(evutil_socket_t sig, short events, void *arg)
{
	lg_interrupted = 1;
	if (lg_phase <= LG_RUN)
		loadgen_enter_drain(loadgen_now_ns());
	else
		loadgen_finish();
}

int
main(int argc, char **argv)
{
	struct timeval tick = { 0, 0 };
	struct timeval prog = { LG_PROGRESS_MS / 1000, 0 };
	char err[256];
	double run_s;
	uint32_t i;
	uint64_t nerr;

	loadgen_parse_args(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	lg_nagents = lg_opts.agents * lg_opts.conns_per_vm;
	loadgen_raise_nofile((uint64_t)lg_nagents + 64);
	loadgen_setup_vms();
	tick.tv_usec = (suseconds_t)loadgen_tick_ms() * 1000;
	lg_progress = !lg_opts.quiet && isatty(STDERR_FILENO);

	if ((lg_base = event_base_new()) == NULL)
		loadgen_fatalx("cannot make an event base");
	if (gen_init(err, sizeof(err)) == -1)
		loadgen_usage_exit("%s", err);
	if (lg_opts.record != NULL) {
		if ((lg_record = fopen(lg_opts.record, "w")) == NULL)
			loadgen_fatalx("%s: %s", lg_opts.record, strerror(errno));
		setvbuf(lg_record, NULL, _IOFBF, 1024 * 1024);
	}
	if (lg_opts.verdict_log != NULL) {
		if ((lg_verdict_log = fopen(lg_opts.verdict_log, "w")) == NULL)
			loadgen_fatalx("%s: %s", lg_opts.verdict_log,
			    strerror(errno));
		setvbuf(lg_verdict_log, NULL, _IOFBF, 1024 * 1024);
	}
	if ((lg_agents = calloc(lg_nagents, sizeof(*lg_agents))) == NULL)
		loadgen_fatalx("out of memory for %u connections", lg_nagents);

	lg_tick_ev = event_new(lg_base, -1, EV_PERSIST, loadgen_tick_cb, NULL);
	lg_sigint_ev = evsignal_new(lg_base, SIGINT, loadgen_signal_cb, NULL);
	lg_sigterm_ev = evsignal_new(lg_base, SIGTERM, loadgen_signal_cb, NULL);
	if (lg_tick_ev == NULL || lg_sigint_ev == NULL || lg_sigterm_ev == NULL)
		loadgen_fatalx("cannot make events");
	evsignal_add(lg_sigint_ev, NULL);
	evsignal_add(lg_sigterm_ev, NULL);
	if (lg_progress) {
		lg_progress_ev = event_new(lg_base, -1, EV_PERSIST,
		    loadgen_progress_cb, NULL);
		if (lg_progress_ev == NULL)
			loadgen_fatalx("cannot make events");
		event_add(lg_progress_ev, &prog);
	}

	for (i = 0; i < lg_nagents; i++)
		agent_init(&lg_agents[i], i, &lg_vms[i / lg_opts.conns_per_vm],
		    i % lg_opts.conns_per_vm,
		    lg_vms[i / lg_opts.conns_per_vm].rate / lg_opts.conns_per_vm);
	for (i = 0; i < lg_nagents; i++)
		agent_start(&lg_agents[i]);
	lg_dial_ns = lg_start_ns = lg_last_tick_ns = loadgen_now_ns();
	event_add(lg_tick_ev, &tick);

	event_base_dispatch(lg_base);
	loadgen_finish();

	run_s = (double)(lg_run_end_ns - lg_start_ns) / 1e9;
	if (lg_record != NULL && fclose(lg_record) != 0) {
		loadgen_log("%s: %s", lg_opts.record, strerror(errno));
		stats_error(LG_ERR_SEND);
	}
	lg_record = NULL;
	if (lg_verdict_log != NULL && fclose(lg_verdict_log) != 0) {
		loadgen_log("%s: %s", lg_opts.verdict_log, strerror(errno));
		stats_error(LG_ERR_SEND);
	}
	lg_verdict_log = NULL;
	stats_report(stdout, run_s, lg_opts.json);
	nerr = stats_errors_total();

	event_free(lg_tick_ev);
	event_free(lg_sigint_ev);
	event_free(lg_sigterm_ev);
	if (lg_progress_ev != NULL)
		event_free(lg_progress_ev);
	free(lg_agents);
	loadgen_free_vms();
	gen_free();
	content_free();
	event_base_free(lg_base);
	return nerr == 0 ? 0 : 1;
}
