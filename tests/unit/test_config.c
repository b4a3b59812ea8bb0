/*
 * test_config.c: the configuration file, its errors and its last-good copy.
 *
 * Files are written under a mkdtemp(3) folder. Every error is checked in
 * full ("file:line: reason"), since operators and scripts read that text.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"

#define EXAMPLE_PATH	"docs/muxd.conf.example"
/* Expected messages: room for two paths, so snprintf never truncates. */
#define WANT_MAX	(3 * PATH_MAX)

static char	tmpdir[] = "/tmp/test_config.XXXXXX";

static void
tmp_path(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", tmpdir, name);
}

static void
write_bytes(const char *path, const char *data, size_t len)
{
	FILE	*f;

	f = fopen(path, "w");
	assert_non_null(f);
	if (len > 0)
		assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static void
write_text(const char *path, const char *text)
{
	write_bytes(path, text, strlen(text));
}

static char *
read_all(const char *path, size_t *lenp)
{
	FILE	*f;
	char	*buf;
	long	 n;

	f = fopen(path, "r");
	if (f == NULL)
		return (NULL);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n >= 0);
	rewind(f);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	*lenp = (size_t)n;
	return (buf);
}

/* Load text as a file named name and expect exactly "path" + suffix. */
static void
expect_error_bytes(const char *name, const char *data, size_t len,
    const char *suffix)
{
	struct config	*conf;
	char		 path[PATH_MAX], err[CONFIG_ERR_MAX], want[WANT_MAX];

	conf = malloc(sizeof *conf);
	assert_non_null(conf);
	tmp_path(path, sizeof path, name);
	write_bytes(path, data, len);
	snprintf(want, sizeof want, "%s%s", path, suffix);
	assert_int_equal(config_load(path, conf, err, sizeof err), -1);
	assert_string_equal(err, want);
	free(conf);
}

static void
expect_error(const char *text, const char *suffix)
{
	expect_error_bytes("bad.conf", text, strlen(text), suffix);
}

static struct config *
load_ok(const char *text)
{
	struct config	*conf;
	char		 path[PATH_MAX], err[CONFIG_ERR_MAX];

	conf = malloc(sizeof *conf);
	assert_non_null(conf);
	tmp_path(path, sizeof path, "good.conf");
	write_text(path, text);
	if (config_load(path, conf, err, sizeof err) != 0)
		fail_msg("unexpected error: %s", err);
	assert_string_equal(err, "");
	assert_string_equal(conf->source, path);
	assert_int_equal(conf->from_last_good, 0);
	return (conf);
}

static int
rm_tree(const char *dir)
{
	DIR		*d;
	struct dirent	*de;
	char		 p[PATH_MAX];

	if ((d = opendir(dir)) == NULL)
		return (-1);
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
		if (de->d_type == DT_DIR)
			rm_tree(p);
		else
			unlink(p);
	}
	closedir(d);
	return (rmdir(dir));
}

/* Each test starts in an empty folder. */
static int
setup(void **state)
{
	(void)state;
	rm_tree(tmpdir);
	return (mkdir(tmpdir, 0700));
}

static void
check_defaults(const struct config *c)
{
	char	host[CONFIG_STR_MAX] = "";

	gethostname(host, sizeof host - 1);
	assert_string_equal(c->host_id, host[0] ? host : "localhost");
	assert_int_equal(c->transport, CONFIG_TRANSPORT_VSOCK);
	assert_int_equal(c->agent_port, 5011);
	assert_string_equal(c->agent_path, "/var/run/mux/agent.sock");
	assert_string_equal(c->control_path, "/var/run/mux/control.sock");
	assert_int_equal(c->log_level, LOG_LEVEL_INFO);
	assert_int_equal(c->fail_closed, 0);
	assert_int_equal(c->verdict_timeout_ms, 3000);
	assert_int_equal(c->heartbeat_ms, 5000);
	assert_string_equal(c->vm_map, "");
	assert_int_equal(c->agent_max_frame, 64 * 1024);
	assert_int_equal(c->svm_max_frame, 4 * 1024 * 1024);
	assert_true(c->ring_bytes == UINT64_C(64) * 1024 * 1024);
	assert_int_equal(c->ring_events, 1048576);
	assert_int_equal(c->agent_max_events_per_sec, 200000);
	assert_int_equal(c->agent_max_pending_verdicts, 10000);
	assert_int_equal(c->max_agents, 4096);
	assert_int_equal(c->agent_max_connections_per_vm, 8);
	assert_int_equal(c->slow_svm, CONFIG_SLOW_SVM_GAP);
	assert_int_equal(c->svm_window, 8192);
	assert_int_equal(c->batch_max_events, 512);
	assert_int_equal(c->batch_max_bytes, 1024 * 1024);
	assert_int_equal(c->batch_linger_us, 2000);
	assert_string_equal(c->tls_ca, "");
	assert_string_equal(c->tls_cert, "");
	assert_string_equal(c->tls_key, "");
	assert_string_equal(c->metrics_listen, "");
	assert_int_equal(c->nsvms, 0);
}

static void
test_defaults(void **state)
{
	struct config	*c;

	(void)state;
	c = malloc(sizeof *c);
	assert_non_null(c);
	config_defaults(c);
	check_defaults(c);
	assert_string_equal(c->source, "");
	assert_int_equal(c->from_last_good, 0);
	free(c);
}

static const char full_conf[] =
    "; every key, none at its default\n"
    "# a hash comment too\n"
    "[mux]\n"
    "host_id = esx-07\n"
    "transport = unix\n"
    "agent_port = 6000\n"
    "agent_path = /tmp/mux/agent.sock\n"
    "control_path = /tmp/mux/control.sock\n"
    "log_level = DEBUG\n"
    "fail_closed = yes\n"
    "verdict_timeout_ms = 250 ; inline comment\n"
    "heartbeat_ms = 1000\n"
    "vm_map = /etc/mux/vm map\n"
    "\n"
    "[limits]\n"
    "agent_max_frame = 128K\n"
    "svm_max_frame = 8MiB\n"
    "ring_bytes = 2G\n"
    "ring_events = 4096\n"
    "agent_max_events_per_sec = 1000\n"
    "agent_max_pending_verdicts = 50\n"
    "max_agents = 100\n"
    "agent_max_connections_per_vm = 2\n"
    "slow_svm = disconnect\n"
    "svm_window = 16\n"
    "batch_max_events = 32\n"
    "batch_max_bytes = 65536\n"
    "batch_linger_us = 0\n"
    "[tls]\n"
    "ca = /etc/mux/ca.pem\n"
    "cert = /etc/mux/mux.pem\n"
    "key = /etc/mux/mux.key\n"
    "[metrics]\n"
    "listen = 127.0.0.1:9464\n"
    "[svm av]\n"
    "address = av.example.com:7400\n"
    "service_id = com.example.av\n"
    "[svm idfw-2]\n"
    "address = [fd00::2]:7401\n"
    "service_id = com.example.idfw\n"
    "tls = off\n"
    "server_name = idfw.example.com\n";

static void
test_full_file(void **state)
{
	struct config		*c;
	const struct config_svm	*s;

	(void)state;
	c = load_ok(full_conf);
	assert_string_equal(c->host_id, "esx-07");
	assert_int_equal(c->transport, CONFIG_TRANSPORT_UNIX);
	assert_int_equal(c->agent_port, 6000);
	assert_string_equal(c->agent_path, "/tmp/mux/agent.sock");
	assert_string_equal(c->control_path, "/tmp/mux/control.sock");
	assert_int_equal(c->log_level, LOG_LEVEL_DEBUG);
	assert_int_equal(c->fail_closed, 1);
	assert_int_equal(c->verdict_timeout_ms, 250);
	assert_int_equal(c->heartbeat_ms, 1000);
	assert_string_equal(c->vm_map, "/etc/mux/vm map");
	assert_int_equal(c->agent_max_frame, 128 * 1024);
	assert_int_equal(c->svm_max_frame, 8 * 1024 * 1024);
	assert_true(c->ring_bytes == UINT64_C(2) * 1024 * 1024 * 1024);
	assert_int_equal(c->ring_events, 4096);
	assert_int_equal(c->agent_max_events_per_sec, 1000);
	assert_int_equal(c->agent_max_pending_verdicts, 50);
	assert_int_equal(c->max_agents, 100);
	assert_int_equal(c->agent_max_connections_per_vm, 2);
	assert_int_equal(c->slow_svm, CONFIG_SLOW_SVM_DISCONNECT);
	assert_int_equal(c->svm_window, 16);
	assert_int_equal(c->batch_max_events, 32);
	assert_int_equal(c->batch_max_bytes, 65536);
	assert_int_equal(c->batch_linger_us, 0);
	assert_string_equal(c->tls_ca, "/etc/mux/ca.pem");
	assert_string_equal(c->tls_cert, "/etc/mux/mux.pem");
	assert_string_equal(c->tls_key, "/etc/mux/mux.key");
	assert_string_equal(c->metrics_listen, "127.0.0.1:9464");
	assert_int_equal(c->nsvms, 2);

	s = config_svm_find(c, "av");
	assert_non_null(s);
	assert_string_equal(s->address, "av.example.com:7400");
	assert_string_equal(s->service_id, "com.example.av");
	assert_int_equal(s->tls, 1);
	assert_string_equal(s->server_name, "av.example.com");
	assert_int_equal(s->line, 35);

	s = config_svm_find(c, "idfw-2");
	assert_non_null(s);
	assert_string_equal(s->address, "[fd00::2]:7401");
	assert_int_equal(s->tls, 0);
	assert_string_equal(s->server_name, "idfw.example.com");
	assert_int_equal(s->line, 38);

	assert_null(config_svm_find(c, "nope"));
	free(c);
}

/* The shipped example parses, and so does every setting it shows. */
static void
test_example_file(void **state)
{
	struct config	*c, *d;
	char		 err[CONFIG_ERR_MAX], path[PATH_MAX];
	char		*text, *out, *p, *line;
	size_t		 len, olen = 0;

	(void)state;
	c = malloc(sizeof *c);
	d = malloc(sizeof *d);
	assert_non_null(c);
	assert_non_null(d);
	if (config_load(EXAMPLE_PATH, c, err, sizeof err) != 0)
		fail_msg("%s", err);
	config_defaults(d);
	snprintf(d->source, sizeof d->source, "%s", EXAMPLE_PATH);
	assert_memory_equal(c, d, sizeof *c);

	/* Uncomment every "; setting" line: the example must stay true. */
	text = read_all(EXAMPLE_PATH, &len);
	assert_non_null(text);
	out = calloc(1, len + 1);
	assert_non_null(out);
	for (line = strtok_r(text, "\n", &p); line != NULL;
	    line = strtok_r(NULL, "\n", &p)) {
		if (strncmp(line, "; ", 2) == 0)
			line += 2;
		olen += (size_t)sprintf(out + olen, "%s\n", line);
	}
	tmp_path(path, sizeof path, "example.conf");
	write_text(path, out);
	if (config_load(path, c, err, sizeof err) != 0)
		fail_msg("%s", err);
	/* Everything but the illustrations is at its default. */
	assert_int_equal(c->transport, d->transport);
	assert_int_equal(c->agent_port, d->agent_port);
	assert_string_equal(c->agent_path, d->agent_path);
	assert_string_equal(c->control_path, d->control_path);
	assert_int_equal(c->log_level, d->log_level);
	assert_int_equal(c->fail_closed, d->fail_closed);
	assert_int_equal(c->verdict_timeout_ms, d->verdict_timeout_ms);
	assert_int_equal(c->heartbeat_ms, d->heartbeat_ms);
	assert_int_equal(c->agent_max_frame, d->agent_max_frame);
	assert_int_equal(c->svm_max_frame, d->svm_max_frame);
	assert_true(c->ring_bytes == d->ring_bytes);
	assert_int_equal(c->ring_events, d->ring_events);
	assert_int_equal(c->agent_max_events_per_sec,
	    d->agent_max_events_per_sec);
	assert_int_equal(c->agent_max_pending_verdicts,
	    d->agent_max_pending_verdicts);
	assert_int_equal(c->max_agents, d->max_agents);
	assert_int_equal(c->agent_max_connections_per_vm,
	    d->agent_max_connections_per_vm);
	assert_int_equal(c->slow_svm, d->slow_svm);
	assert_int_equal(c->svm_window, d->svm_window);
	assert_int_equal(c->batch_max_events, d->batch_max_events);
	assert_int_equal(c->batch_max_bytes, d->batch_max_bytes);
	assert_int_equal(c->batch_linger_us, d->batch_linger_us);
	assert_int_equal(c->nsvms, 1);
	assert_int_equal(c->svms[0].tls, 1);
	free(out);
	free(text);
	free(c);
	free(d);
}

static void
test_comments_only_is_defaults(void **state)
{
	struct config	*c;

	(void)state;
	c = load_ok("# nothing set\r\n; at all\r\n\r\n[mux]\r\n");
	check_defaults(c);
	free(c);
}

static void
test_sizes_and_switches(void **state)
{
	struct config	*c;

	(void)state;
	c = load_ok("[limits]\nagent_max_frame = 1k\nsvm_max_frame = 64KiB\n"
	    "batch_max_bytes = 2048\nring_bytes = 16G\n[mux]\n"
	    "fail_closed = On\n");
	assert_int_equal(c->agent_max_frame, 1024);
	assert_int_equal(c->svm_max_frame, 65536);
	assert_true(c->ring_bytes == UINT64_C(16) << 30);
	assert_int_equal(c->fail_closed, 1);
	free(c);

	c = load_ok("[mux]\nfail_closed = 0\n[svm a]\naddress = a:1\n"
	    "service_id = s\ntls = FALSE\n");
	assert_int_equal(c->fail_closed, 0);
	assert_int_equal(c->svms[0].tls, 0);
	free(c);
}

/* inih reads an indented line as more of the previous value: not here. */
static void
test_indented_lines(void **state)
{
	struct config	*c;

	(void)state;
	c = load_ok("[mux]\n\thost_id = h1\n  heartbeat_ms = 700\n"
	    "  [ svm  x ]\n    address = x:9\n    service_id = y\n");
	assert_string_equal(c->host_id, "h1");
	assert_int_equal(c->heartbeat_ms, 700);
	assert_int_equal(c->nsvms, 1);
	assert_string_equal(c->svms[0].name, "x");
	free(c);
}

/* Cut off without a newline but still whole: just parsed. */
static void
test_truncated_but_whole(void **state)
{
	struct config	*c;

	(void)state;
	c = load_ok("[mux]\nheartbeat_ms = 500");
	assert_int_equal(c->heartbeat_ms, 500);
	free(c);
}

struct bad_case {
	const char	*name;
	const char	*text;
	const char	*suffix;
};

static const struct bad_case bad_cases[] = {
	{ "unknown key", "[mux]\nhost_id = h\nfoo = 1\n",
	    ":3: unknown key 'foo' in section [mux]" },
	{ "unknown key in svm", "[svm a]\naddress = a:1\nport = 3\n"
	    "service_id = x\n",
	    ":3: unknown key 'port' in section [svm a]" },
	{ "unknown section", "[bogus]\n",
	    ":1: unknown section [bogus]" },
	{ "unknown section after keys", "[mux]\nheartbeat_ms = 200\n[Mux]\n",
	    ":3: unknown section [Mux]" },
	{ "key outside a section", "heartbeat_ms = 200\n",
	    ":1: key 'heartbeat_ms' outside any section" },
	{ "bad integer", "[mux]\nheartbeat_ms = abc\n",
	    ":2: bad value 'abc' for heartbeat_ms (expected an integer "
	    "100..600000)" },
	{ "integer below range", "[mux]\n\nheartbeat_ms = 50\n",
	    ":3: bad value '50' for heartbeat_ms (expected an integer "
	    "100..600000)" },
	{ "integer above range", "[mux]\nverdict_timeout_ms = 600001\n",
	    ":2: bad value '600001' for verdict_timeout_ms (expected an "
	    "integer 10..600000)" },
	{ "negative integer", "[limits]\nsvm_window = -1\n",
	    ":2: bad value '-1' for svm_window (expected an integer 1..65536)" },
	{ "integer overflow", "[mux]\nagent_port = 99999999999999999999999\n",
	    ":2: bad value '99999999999999999999999' for agent_port (expected "
	    "an integer 1..65535)" },
	{ "port zero", "[mux]\nagent_port = 0\n",
	    ":2: bad value '0' for agent_port (expected an integer 1..65535)" },
	{ "suffix on a count", "[limits]\nring_events = 4K\n",
	    ":2: bad value '4K' for ring_events (expected an integer "
	    "1024..67108864)" },
	{ "bad size suffix", "[limits]\nagent_max_frame = 64Q\n",
	    ":2: bad value '64Q' for agent_max_frame (expected a size 1K..16M, "
	    "in bytes or with a K, M or G suffix)" },
	{ "size above range", "[limits]\nagent_max_frame = 17M\n",
	    ":2: bad value '17M' for agent_max_frame (expected a size 1K..16M, "
	    "in bytes or with a K, M or G suffix)" },
	{ "size below range", "[limits]\nring_bytes = 1023K\n",
	    ":2: bad value '1023K' for ring_bytes (expected a size 1M..16G, "
	    "in bytes or with a K, M or G suffix)" },
	{ "empty integer", "[limits]\nmax_agents =\n",
	    ":2: bad value '' for max_agents (expected an integer "
	    "1..1048576)" },
	{ "bad enum", "[mux]\ntransport = tcp\n",
	    ":2: bad value 'tcp' for transport (expected vsock|unix)" },
	{ "bad log level", "[mux]\nlog_level = loud\n",
	    ":2: bad value 'loud' for log_level (expected "
	    "off|error|warn|info|debug|trace)" },
	{ "bad slow_svm", "[limits]\nslow_svm = drop\n",
	    ":2: bad value 'drop' for slow_svm (expected gap|disconnect)" },
	{ "bad bool", "[mux]\nfail_closed = maybe\n",
	    ":2: bad value 'maybe' for fail_closed (expected "
	    "true|false|yes|no|on|off|1|0)" },
	{ "empty host_id", "[mux]\nhost_id =\n",
	    ":2: empty value for host_id" },
	{ "path too long", "[mux]\nagent_path = /"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaa\n",
	    ":2: value for agent_path too long (at most 107 characters)" },
	{ "duplicate key", "[mux]\nheartbeat_ms = 200\n[limits]\n[mux]\n"
	    "heartbeat_ms = 300\n",
	    ":5: duplicate key 'heartbeat_ms' in section [mux] (first at "
	    "line 2)" },
	{ "svm without address", "[mux]\n[svm a]\nservice_id = x\n",
	    ":2: [svm a] needs address" },
	{ "svm without service_id", "[svm a]\naddress = a:1\n[mux]\n",
	    ":1: [svm a] needs service_id" },
	{ "empty svm section", "[svm a]\n",
	    ":1: [svm a] needs address" },
	{ "missing address beats a later error",
	    "[svm a]\nservice_id = x\n[mux]\nfoo = 1\n",
	    ":1: [svm a] needs address" },
	{ "duplicate svm",
	    "[svm a]\naddress = a:1\nservice_id = x\n[svm a]\n"
	    "address = b:1\nservice_id = x\n",
	    ":4: duplicate section [svm a] (first at line 1)" },
	{ "svm without a name", "[svm]\n",
	    ":1: [svm] needs a name: [svm NAME]" },
	{ "bad svm name", "[svm a/b]\n",
	    ":1: bad svm name 'a/b' (1 to 63 letters, digits, '.', '-' or "
	    "'_')" },
	{ "address without port", "[svm a]\nservice_id = x\n"
	    "address = svm.local\n",
	    ":3: bad value 'svm.local' for address (expected host:port with "
	    "port 1..65535, [v6]:port for IPv6)" },
	{ "address port out of range", "[svm a]\naddress = svm:65536\n"
	    "service_id = x\n",
	    ":2: bad value 'svm:65536' for address (expected host:port with "
	    "port 1..65535, [v6]:port for IPv6)" },
	{ "address bare IPv6", "[svm a]\naddress = fd00::1:80\n"
	    "service_id = x\n",
	    ":2: bad value 'fd00::1:80' for address (expected host:port with "
	    "port 1..65535, [v6]:port for IPv6)" },
	{ "address empty host", "[svm a]\naddress = :80\n"
	    "service_id = x\n",
	    ":2: bad value ':80' for address (expected host:port with "
	    "port 1..65535, [v6]:port for IPv6)" },
	{ "bad metrics listen", "[metrics]\nlisten = 9464\n",
	    ":2: bad value '9464' for listen (expected host:port with "
	    "port 1..65535, [v6]:port for IPv6)" },
	{ "same address twice",
	    "[svm a]\naddress = Svm:1\nservice_id = x\n[svm b]\n"
	    "address = svm:1\nservice_id = x\n",
	    ":4: [svm b] has the same address as [svm a] (svm:1)" },
	{ "empty file", "",
	    ":0: empty file (treated as damaged)" },
	{ "blank file", "\n  \n\t\r\n",
	    ":0: empty file (treated as damaged)" },
	{ "truncated in a key", "[mux]\nheartbeat_ms = 500\nverdict_ti",
	    ":3: syntax error (expected '[section]', 'key = value' or a "
	    "comment)" },
	{ "truncated in a header", "[mux]\nheartbeat_ms = 500\n[lim",
	    ":3: bad section header '[lim' (missing ']')" },
	{ "truncated in a value", "[limits]\nring_bytes = 6",
	    ":2: bad value '6' for ring_bytes (expected a size 1M..16G, "
	    "in bytes or with a K, M or G suffix)" },
	{ "text after header", "[mux] heartbeat_ms = 5\n",
	    ":1: unexpected text after section header: 'heartbeat_ms = 5'" },
	{ "line without value", "[mux]\n\nfail_closed\n",
	    ":3: syntax error (expected '[section]', 'key = value' or a "
	    "comment)" },
	{ "ring smaller than frames", "[limits]\nring_bytes = 1M\n"
	    "agent_max_frame = 128K\n",
	    ":3: ring_bytes (1M) must be at least 16 * agent_max_frame (2M)" },
	{ "batch does not fit a frame", "[limits]\nbatch_max_bytes = 1M\n"
	    "svm_max_frame = 1M\n",
	    ":3: svm_max_frame (1M) must be at least batch_max_bytes + 2 * "
	    "agent_max_frame (1152K)" },
	{ "per-VM connections above total", "[limits]\nmax_agents = 4\n",
	    ":2: agent_max_connections_per_vm (8) must not exceed max_agents "
	    "(4)" },
	{ "cert without key", "[tls]\nca = /x\n\ncert = /y\n",
	    ":4: [tls] cert and key must be given together" },
};

static void
test_bad(void **state)
{
	const struct bad_case	*bc = *state;

	expect_error(bc->text, bc->suffix);
}

static void
test_nul_bytes(void **state)
{
	static const char	data[] = "[mux]\nheartbeat_ms = 5\0\0\0\n";
	static const char	zeros[64];

	(void)state;
	expect_error_bytes("nul.conf", data, sizeof data - 1,
	    ":2: NUL byte in line (file damaged)");
	/* What a crash can leave behind: the right size, all zeros. */
	expect_error_bytes("zeros.conf", zeros, sizeof zeros,
	    ":1: NUL byte in line (file damaged)");
}

static void
test_long_line(void **state)
{
	char	text[1024];
	int	n;

	(void)state;
	n = snprintf(text, sizeof text, "[mux]\n\nvm_map = /");
	memset(text + n, 'v', 400);
	snprintf(text + n + 400, sizeof text - (size_t)n - 400, "\n");
	expect_error(text, ":3: line too long (more than 197 characters)");
}

static void
test_too_many_svms(void **state)
{
	char	*text, suffix[64];
	size_t	 off = 0, len = (CONFIG_SVMS_MAX + 1) * 64;
	int	 i;

	(void)state;
	text = malloc(len);
	assert_non_null(text);
	for (i = 0; i <= CONFIG_SVMS_MAX; i++) {
		off += (size_t)snprintf(text + off, len - off,
		    "[svm s%d]\naddress = h%d:1\nservice_id = x\n", i, i);
	}
	snprintf(suffix, sizeof suffix, ":%d: too many [svm] sections (at "
	    "most %d)", CONFIG_SVMS_MAX * 3 + 1, CONFIG_SVMS_MAX);
	expect_error(text, suffix);
	free(text);
}

static void
test_cannot_open(void **state)
{
	struct config	c;
	char		err[CONFIG_ERR_MAX], path[PATH_MAX], want[WANT_MAX];

	(void)state;
	tmp_path(path, sizeof path, "missing.conf");
	snprintf(want, sizeof want, "%s: cannot open: %s", path,
	    strerror(ENOENT));
	assert_int_equal(config_load(path, &c, err, sizeof err), -1);
	assert_string_equal(err, want);

	snprintf(want, sizeof want, "%s: cannot read: %s", tmpdir,
	    strerror(EISDIR));
	assert_int_equal(config_load(tmpdir, &c, err, sizeof err), -1);
	assert_string_equal(err, want);
}

/* Reload relies on it: a failed load leaves the running config alone. */
static void
test_failure_leaves_out_untouched(void **state)
{
	struct config	*c, *copy;
	char		 err[CONFIG_ERR_MAX], path[PATH_MAX];

	(void)state;
	c = load_ok(full_conf);
	copy = malloc(sizeof *copy);
	assert_non_null(copy);
	memcpy(copy, c, sizeof *c);

	tmp_path(path, sizeof path, "bad.conf");
	/* Good keys first: a half-applied parse would show up here. */
	write_text(path, "[mux]\nheartbeat_ms = 900\nhost_id = other\n"
	    "[limits]\nring_bytes = 6\n");
	assert_int_equal(config_load(path, c, err, sizeof err), -1);
	assert_memory_equal(c, copy, sizeof *c);

	write_text(path, "");
	assert_int_equal(config_load(path, c, err, sizeof err), -1);
	assert_memory_equal(c, copy, sizeof *c);

	tmp_path(path, sizeof path, "missing.conf");
	assert_int_equal(config_load(path, c, err, sizeof err), -1);
	assert_memory_equal(c, copy, sizeof *c);
	free(copy);
	free(c);
}

static void
test_start_last_good(void **state)
{
	struct config	*c;
	struct stat	 st;
	char		 path[PATH_MAX], lg[PATH_MAX + 16], tmp[PATH_MAX + 32];
	char		 err[CONFIG_ERR_MAX], want[WANT_MAX];
	char		*data;
	size_t		 len;

	(void)state;
	c = malloc(sizeof *c);
	assert_non_null(c);
	tmp_path(path, sizeof path, "muxd.conf");
	snprintf(lg, sizeof lg, "%s.last-good", path);
	snprintf(tmp, sizeof tmp, "%s.tmp", lg);

	/* A good file loads and leaves its copy, with the same mode. */
	write_text(path, full_conf);
	assert_int_equal(chmod(path, 01640), 0);
	assert_int_equal(config_start(path, c, err, sizeof err), 0);
	assert_string_equal(err, "");
	assert_int_equal(c->from_last_good, 0);
	assert_string_equal(c->source, path);
	assert_int_equal(c->heartbeat_ms, 1000);
	data = read_all(lg, &len);
	assert_non_null(data);
	assert_int_equal(len, strlen(full_conf));
	assert_memory_equal(data, full_conf, len);
	free(data);
	assert_int_equal(stat(lg, &st), 0);
	assert_int_equal(st.st_mode & 07777, 01640);
	assert_int_equal(stat(tmp, &st), -1);

	/* The disk filled up: start on the copy, with the reason. */
	write_text(path, "");
	memset(c, 0, sizeof *c);
	assert_int_equal(config_start(path, c, err, sizeof err), 0);
	snprintf(want, sizeof want, "%s:0: empty file (treated as damaged)",
	    path);
	assert_string_equal(err, want);
	assert_int_equal(c->from_last_good, 1);
	assert_string_equal(c->source, lg);
	assert_int_equal(c->heartbeat_ms, 1000);
	assert_int_equal(c->nsvms, 2);
	/* ... and the copy was not overwritten by the bad file. */
	data = read_all(lg, &len);
	assert_non_null(data);
	assert_int_equal(len, strlen(full_conf));
	free(data);

	/* A missing file also falls back. */
	assert_int_equal(unlink(path), 0);
	assert_int_equal(config_start(path, c, err, sizeof err), 0);
	assert_int_equal(c->from_last_good, 1);
	assert_non_null(strstr(err, ": cannot open: "));

	/* Neither: -1, the original reason first. */
	write_text(path, "[mux]\nfoo = 1\n");
	assert_int_equal(unlink(lg), 0);
	memset(c, 0x5a, sizeof *c);
	assert_int_equal(config_start(path, c, err, sizeof err), -1);
	snprintf(want, sizeof want, "%s:2: unknown key 'foo' in section [mux]; "
	    "no usable last-good copy (%s: cannot open: %s)", path, lg,
	    strerror(ENOENT));
	assert_string_equal(err, want);
	assert_int_equal(((unsigned char *)c)[0], 0x5a);
	free(c);
}

/* A copy that cannot be written is an alarm, not a reason to stop. */
static void
test_start_last_good_unwritable(void **state)
{
	struct config	*c;
	char		 path[PATH_MAX], tmp[PATH_MAX + 32];
	char		 err[CONFIG_ERR_MAX], want[WANT_MAX];

	(void)state;
	c = malloc(sizeof *c);
	assert_non_null(c);
	tmp_path(path, sizeof path, "muxd.conf");
	snprintf(tmp, sizeof tmp, "%s.last-good.tmp", path);
	write_text(path, "[mux]\nheartbeat_ms = 800\n");
	/* As root permissions do not stop us; a folder in the way does. */
	assert_int_equal(mkdir(tmp, 0700), 0);
	assert_int_equal(config_start(path, c, err, sizeof err), 0);
	assert_int_equal(c->from_last_good, 0);
	assert_int_equal(c->heartbeat_ms, 800);
	snprintf(want, sizeof want, "%s: cannot create: %s", tmp,
	    strerror(EISDIR));
	assert_string_equal(err, want);
	assert_int_equal(rmdir(tmp), 0);
	free(c);
}

static void
test_write_last_good_refuses_bad(void **state)
{
	struct stat	st;
	char		path[PATH_MAX], lg[PATH_MAX + 16], err[CONFIG_ERR_MAX];
	char		want[WANT_MAX];

	(void)state;
	tmp_path(path, sizeof path, "muxd.conf");
	snprintf(lg, sizeof lg, "%s.last-good", path);
	write_text(path, "[limits]\nring_bytes = 6\n");
	assert_int_equal(config_write_last_good(path, err, sizeof err), -1);
	snprintf(want, sizeof want, "%s:2: bad value '6' for ring_bytes "
	    "(expected a size 1M..16G, in bytes or with a K, M or G suffix)",
	    path);
	assert_string_equal(err, want);
	assert_int_equal(stat(lg, &st), -1);

	write_text(path, "[mux]\n");
	assert_int_equal(config_write_last_good(path, err, sizeof err), 0);
	assert_string_equal(err, "");
	assert_int_equal(stat(lg, &st), 0);
	assert_int_equal(st.st_size, 6);
}

static void
test_start_defaults(void **state)
{
	struct config	*c;
	char		 err[CONFIG_ERR_MAX] = "junk";

	(void)state;
	c = malloc(sizeof *c);
	assert_non_null(c);
	assert_int_equal(config_start(NULL, c, err, sizeof err), 0);
	assert_string_equal(err, "");
	check_defaults(c);
	assert_string_equal(c->source, "");
	assert_int_equal(c->from_last_good, 0);
	free(c);
}

static void
test_log_levels(void **state)
{
	static const char *const names[] = { "off", "error", "warn", "info",
	    "debug", "trace" };
	enum log_level	lvl;
	size_t		i;

	(void)state;
	for (i = 0; i < sizeof names / sizeof names[0]; i++) {
		assert_int_equal(config_log_level_parse(names[i], &lvl), 0);
		assert_int_equal(lvl, (enum log_level)i);
		assert_string_equal(config_log_level_name(lvl), names[i]);
	}
	assert_int_equal(config_log_level_parse("Trace", &lvl), 0);
	assert_int_equal(lvl, LOG_LEVEL_TRACE);
	assert_int_equal(config_log_level_parse("verbose", &lvl), -1);
	assert_int_equal(config_log_level_parse("", &lvl), -1);
	assert_string_equal(config_log_level_name((enum log_level)42),
	    "unknown");
}

static void
test_address_split(void **state)
{
	char		host[CONFIG_STR_MAX];
	uint16_t	port;

	(void)state;
	assert_int_equal(config_address_split("svm.example:443", host,
	    sizeof host, &port), 0);
	assert_string_equal(host, "svm.example");
	assert_int_equal(port, 443);
	assert_int_equal(config_address_split("[::1]:65535", host,
	    sizeof host, &port), 0);
	assert_string_equal(host, "::1");
	assert_int_equal(port, 65535);
	assert_int_equal(config_address_split("10.0.0.1:1", NULL, 0, NULL), 0);
	assert_int_equal(config_address_split("host", host, sizeof host,
	    &port), -1);
	assert_int_equal(config_address_split("host:", host, sizeof host,
	    &port), -1);
	assert_int_equal(config_address_split("host:0", host, sizeof host,
	    &port), -1);
	assert_int_equal(config_address_split("host:+80", host, sizeof host,
	    &port), -1);
	assert_int_equal(config_address_split("host:000080", host, sizeof host,
	    &port), -1);
	assert_int_equal(config_address_split("[]:80", host, sizeof host,
	    &port), -1);
	assert_int_equal(config_address_split("[::1:80", host, sizeof host,
	    &port), -1);
	assert_int_equal(config_address_split("a b:80", host, sizeof host,
	    &port), -1);
	assert_int_equal(config_address_split("longname:80", host, 4, &port),
	    -1);
}

/* What `muxctl svm add` uses: the same rules without a file. */
static void
test_svm_runtime(void **state)
{
	struct config_svm	svm;
	char			err[CONFIG_ERR_MAX];

	(void)state;
	assert_int_equal(config_svm_init(&svm, "bad name", err, sizeof err),
	    -1);
	assert_string_equal(err, "bad svm name 'bad name' (1 to 63 letters, "
	    "digits, '.', '-' or '_')");
	assert_int_equal(config_svm_init(&svm, "av", err, sizeof err), 0);
	assert_int_equal(svm.tls, 1);
	assert_int_equal(config_svm_check(&svm, err, sizeof err), -1);
	assert_string_equal(err, "[svm av] needs address");
	assert_int_equal(config_svm_set(&svm, "address", "nope", err,
	    sizeof err), -1);
	assert_int_equal(config_svm_set(&svm, "colour", "red", err,
	    sizeof err), -1);
	assert_string_equal(err, "unknown key 'colour' in section [svm av]");
	assert_int_equal(config_svm_set(&svm, "address", "10.1.2.3:7400", err,
	    sizeof err), 0);
	assert_int_equal(config_svm_set(&svm, "service_id", "com.x", err,
	    sizeof err), 0);
	assert_int_equal(config_svm_set(&svm, "tls", "off", err, sizeof err),
	    0);
	assert_int_equal(config_svm_check(&svm, err, sizeof err), 0);
	assert_string_equal(svm.server_name, "10.1.2.3");
	assert_int_equal(svm.tls, 0);
}

#define STATIC_TESTS	19

int
main(void)
{
	struct CMUnitTest	 tests[STATIC_TESTS +
	    sizeof bad_cases / sizeof bad_cases[0]];
	const struct CMUnitTest	 fixed[STATIC_TESTS] = {
		cmocka_unit_test_setup(test_defaults, setup),
		cmocka_unit_test_setup(test_full_file, setup),
		cmocka_unit_test_setup(test_example_file, setup),
		cmocka_unit_test_setup(test_comments_only_is_defaults, setup),
		cmocka_unit_test_setup(test_sizes_and_switches, setup),
		cmocka_unit_test_setup(test_indented_lines, setup),
		cmocka_unit_test_setup(test_truncated_but_whole, setup),
		cmocka_unit_test_setup(test_nul_bytes, setup),
		cmocka_unit_test_setup(test_long_line, setup),
		cmocka_unit_test_setup(test_too_many_svms, setup),
		cmocka_unit_test_setup(test_cannot_open, setup),
		cmocka_unit_test_setup(test_failure_leaves_out_untouched, setup),
		cmocka_unit_test_setup(test_start_last_good, setup),
		cmocka_unit_test_setup(test_start_last_good_unwritable, setup),
		cmocka_unit_test_setup(test_write_last_good_refuses_bad, setup),
		cmocka_unit_test_setup(test_start_defaults, setup),
		cmocka_unit_test_setup(test_log_levels, setup),
		cmocka_unit_test_setup(test_address_split, setup),
		cmocka_unit_test_setup(test_svm_runtime, setup),
	};
	size_t			 i;
	int			 failed;

	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return (1);
	}
	memcpy(tests, fixed, sizeof fixed);
	/* One test per bad input, named after it. */
	for (i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
		tests[STATIC_TESTS + i] = (struct CMUnitTest){
			.name = bad_cases[i].name,
			.test_func = test_bad,
			.setup_func = setup,
			.initial_state = (void *)&bad_cases[i],
		};
	}
	failed = cmocka_run_group_tests_name("config", tests, NULL, NULL);
	rm_tree(tmpdir);
	return (failed);
}
