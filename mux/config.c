/*
 * config.c: the muxd configuration file.
 *
 * Every key is declared once, in config_keys[]: section, name, type, where
 * it lives, its range and its default. Defaults, parsing, range checks and
 * error messages all come from that table, so a new key is one line.
 *
 * libinih splits the file into sections and key = value pairs. The file is
 * read into memory first and handed to inih one line at a time through our
 * own reader, which lets us
 *  - count lines (Debian builds inih without line numbers for handlers),
 *  - see section headers as they come, so that an unknown or empty section
 *    and a [svm NAME] without keys are still reported at their line,
 *  - refuse what inih would take silently: NUL bytes (a crash can leave a
 *    file full of them, which inih reads as blank lines), lines longer than
 *    its buffer (it would cut them into two lines), and indented lines
 *    (inih reads them as the continuation of the previous value),
 *  - write the exact bytes that were validated to the last-good copy.
 *
 * Errors are "file:line: reason"; when there are several, the lowest line
 * wins, so the operator is sent to the first problem in the file. Checks
 * between keys run only on a file that parsed, and name the line of the
 * later of the keys involved (0 when both are defaults).
 *
 * Nothing here is global: a parse builds a fresh struct config on the heap
 * and copies it out only when everything passed, so a reload with a bad
 * file leaves the running configuration as it was.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>

#include "config.h"

#define CONFIG_NITEMS(a)	(sizeof(a) / sizeof((a)[0]))

/* Enum and bool fields are written as an int. */
_Static_assert(sizeof(enum config_transport) == sizeof(int), "enum size");
_Static_assert(sizeof(enum config_slow_svm) == sizeof(int), "enum size");
_Static_assert(sizeof(enum log_level) == sizeof(int), "enum size");

/* A configuration file is a few KiB; anything this big is not one. */
#define CONFIG_FILE_MAX		(1024 * 1024)

#define KIB			(UINT64_C(1) << 10)
#define MIB			(UINT64_C(1) << 20)
#define GIB			(UINT64_C(1) << 30)

/* The ring keeps at least this many agent frames of the largest size. */
#define CONFIG_RING_FRAMES	16

/*
 * An SVM frame carries a full batch plus one more event that made it
 * overflow, and each delivery wraps its event in seq, VM identity and
 * times; twice the agent frame leaves room for that envelope.
 */
#define CONFIG_BATCH_SLACK	2

enum config_section {
	CONFIG_SECTION_NONE = 0,	/* before the first header */
	CONFIG_SECTION_MUX,
	CONFIG_SECTION_LIMITS,
	CONFIG_SECTION_TLS,
	CONFIG_SECTION_METRICS,
	CONFIG_SECTION_SVM,
	CONFIG_SECTION_BAD,		/* header already reported */
};

static const char *const config_section_names[] = {
	[CONFIG_SECTION_MUX] = "mux",
	[CONFIG_SECTION_LIMITS] = "limits",
	[CONFIG_SECTION_TLS] = "tls",
	[CONFIG_SECTION_METRICS] = "metrics",
};

enum config_type {
	CONFIG_TYPE_UINT,	/* uint32_t or uint64_t, by field size */
	CONFIG_TYPE_BOOL,	/* int, 0 or 1 */
	CONFIG_TYPE_ENUM,	/* an enum, names in config_key.names */
	CONFIG_TYPE_STR,	/* char array */
	CONFIG_TYPE_ADDR,	/* char array holding host:port */
};

#define CONFIG_BYTES		0x1	/* UINT: K, M, G suffixes */
#define CONFIG_NONEMPTY		0x2	/* STR, ADDR: "" is refused */
#define CONFIG_REQUIRED		0x4	/* [svm]: must be given */

struct config_name {
	const char	*name;
	int		 value;
};

struct config_key {
	enum config_section	 section;
	const char		*name;
	enum config_type	 type;
	int			 flags;
	size_t			 off;	/* in struct config or config_svm */
	size_t			 size;
	uint64_t		 min;
	uint64_t		 max;
	uint64_t		 dflt;	/* UINT, BOOL, ENUM */
	const char		*sdflt;	/* STR, ADDR */
	const struct config_name *names;
};

static const struct config_name config_transport_names[] = {
	{ "vsock", CONFIG_TRANSPORT_VSOCK },
	{ "unix", CONFIG_TRANSPORT_UNIX },
	{ NULL, 0 }
};

static const struct config_name config_level_names[] = {
	{ "off", LOG_LEVEL_OFF },
	{ "error", LOG_LEVEL_ERROR },
	{ "warn", LOG_LEVEL_WARN },
	{ "info", LOG_LEVEL_INFO },
	{ "debug", LOG_LEVEL_DEBUG },
	{ "trace", LOG_LEVEL_TRACE },
	{ NULL, 0 }
};

static const struct config_name config_slow_svm_names[] = {
	{ "gap", CONFIG_SLOW_SVM_GAP },
	{ "disconnect", CONFIG_SLOW_SVM_DISCONNECT },
	{ NULL, 0 }
};

/* Every spelling a human might use for a switch. */
static const struct config_name config_bool_names[] = {
	{ "true", 1 }, { "false", 0 },
	{ "yes", 1 }, { "no", 0 },
	{ "on", 1 }, { "off", 0 },
	{ "1", 1 }, { "0", 0 },
	{ NULL, 0 }
};

#define C(f)	offsetof(struct config, f), sizeof(((struct config *)0)->f)
#define S(f)	offsetof(struct config_svm, f), \
		sizeof(((struct config_svm *)0)->f)

#define UINT(sec, key, field, lo, hi, def, fl) \
	{ CONFIG_SECTION_##sec, key, CONFIG_TYPE_UINT, fl, field, lo, hi, \
	    def, NULL, NULL }
#define BOOL(sec, key, field, def) \
	{ CONFIG_SECTION_##sec, key, CONFIG_TYPE_BOOL, 0, field, 0, 1, def, \
	    NULL, config_bool_names }
#define ENUM(sec, key, field, names, def) \
	{ CONFIG_SECTION_##sec, key, CONFIG_TYPE_ENUM, 0, field, 0, 0, def, \
	    NULL, names }
#define STR(sec, key, field, def, fl) \
	{ CONFIG_SECTION_##sec, key, CONFIG_TYPE_STR, fl, field, 0, 0, 0, \
	    def, NULL }
#define ADDR(sec, key, field, def, fl) \
	{ CONFIG_SECTION_##sec, key, CONFIG_TYPE_ADDR, fl, field, 0, 0, 0, \
	    def, NULL }

static const struct config_key config_keys[] = {
	/* [mux]; host_id "" is replaced by gethostname() in config_defaults. */
	STR(MUX, "host_id", C(host_id), "", CONFIG_NONEMPTY),
	ENUM(MUX, "transport", C(transport), config_transport_names,
	    CONFIG_TRANSPORT_VSOCK),
	UINT(MUX, "agent_port", C(agent_port), 1, 65535, 5011, 0),
	STR(MUX, "agent_path", C(agent_path), "/var/run/mux/agent.sock",
	    CONFIG_NONEMPTY),
	STR(MUX, "control_path", C(control_path), "/var/run/mux/control.sock",
	    CONFIG_NONEMPTY),
	ENUM(MUX, "log_level", C(log_level), config_level_names,
	    LOG_LEVEL_INFO),
	BOOL(MUX, "fail_closed", C(fail_closed), 0),
	UINT(MUX, "verdict_timeout_ms", C(verdict_timeout_ms), 10, 600000,
	    3000, 0),
	UINT(MUX, "heartbeat_ms", C(heartbeat_ms), 100, 600000, 5000, 0),
	STR(MUX, "vm_map", C(vm_map), "", 0),

	/* [limits] */
	UINT(LIMITS, "agent_max_frame", C(agent_max_frame), 1 * KIB,
	    16 * MIB, 64 * KIB, CONFIG_BYTES),
	UINT(LIMITS, "svm_max_frame", C(svm_max_frame), 64 * KIB, 64 * MIB,
	    4 * MIB, CONFIG_BYTES),
	UINT(LIMITS, "ring_bytes", C(ring_bytes), 1 * MIB, 16 * GIB, 64 * MIB,
	    CONFIG_BYTES),
	UINT(LIMITS, "ring_events", C(ring_events), 1024, UINT64_C(1) << 26,
	    1048576, 0),
	UINT(LIMITS, "agent_max_events_per_sec", C(agent_max_events_per_sec),
	    1, 100000000, 200000, 0),
	UINT(LIMITS, "agent_max_bytes_per_sec", C(agent_max_bytes_per_sec),
	    1 * KIB, 16 * GIB, 256 * MIB, CONFIG_BYTES),
	UINT(LIMITS, "agent_max_pending_verdicts",
	    C(agent_max_pending_verdicts), 1, 1000000, 10000, 0),
	UINT(LIMITS, "max_agents", C(max_agents), 1, 1048576, 4096, 0),
	UINT(LIMITS, "agent_max_connections_per_vm",
	    C(agent_max_connections_per_vm), 1, 1024, 8, 0),
	ENUM(LIMITS, "slow_svm", C(slow_svm), config_slow_svm_names,
	    CONFIG_SLOW_SVM_GAP),
	UINT(LIMITS, "svm_window", C(svm_window), 1, 65536, 8192, 0),
	UINT(LIMITS, "batch_max_events", C(batch_max_events), 1, 65536, 512,
	    0),
	UINT(LIMITS, "batch_max_bytes", C(batch_max_bytes), 1 * KIB, 64 * MIB,
	    1 * MIB, CONFIG_BYTES),
	UINT(LIMITS, "batch_linger_us", C(batch_linger_us), 0, 1000000, 2000,
	    0),

	/* [tls]; "" = not set. */
	STR(TLS, "ca", C(tls_ca), "", 0),
	STR(TLS, "cert", C(tls_cert), "", 0),
	STR(TLS, "key", C(tls_key), "", 0),

	/* [metrics]; "" = no endpoint. */
	ADDR(METRICS, "listen", C(metrics_listen), "", 0),

	/* [svm NAME]; server_name "" becomes the host of address. */
	ADDR(SVM, "address", S(address), "",
	    CONFIG_NONEMPTY | CONFIG_REQUIRED),
	STR(SVM, "service_id", S(service_id), "",
	    CONFIG_NONEMPTY | CONFIG_REQUIRED),
	BOOL(SVM, "tls", S(tls), 1),
	STR(SVM, "server_name", S(server_name), "", 0),
};

#undef C
#undef S
#undef UINT
#undef BOOL
#undef ENUM
#undef STR
#undef ADDR

#define CONFIG_NKEYS	CONFIG_NITEMS(config_keys)

/* The state of one parse; on the heap, struct config is large. */
struct config_parse {
	struct config		 conf;
	const char		*path;

	const char		*buf;		/* the whole file */
	size_t			 len;
	size_t			 pos;
	int			 line;		/* of the line being parsed */

	enum config_section	 section;
	struct config_svm	*svm;		/* the current [svm NAME] */

	/* Where each key was set, 0 = default: row 0 global, 1 + i svms[i]. */
	int			 set[CONFIG_SVMS_MAX + 1][CONFIG_NKEYS];

	int			 failed;
	int			 err_line;
	char			 err[CONFIG_ERR_MAX];
};

static void	config_seterr(char *, size_t, const char *, ...)
		    __attribute__((format(printf, 3, 4)));
static void	config_error(struct config_parse *, int, const char *, ...)
		    __attribute__((format(printf, 3, 4)));

static void
config_seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list	ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Record an error at line; the first one in the file is the one kept. */
static void
config_error(struct config_parse *cp, int line, const char *fmt, ...)
{
	va_list	ap;
	int	n;

	if (cp->failed && cp->err_line <= line)
		return;
	cp->failed = 1;
	cp->err_line = line;
	n = snprintf(cp->err, sizeof cp->err, "%s:%d: ", cp->path, line);
	if (n < 0 || (size_t)n >= sizeof cp->err)
		return;
	va_start(ap, fmt);
	vsnprintf(cp->err + n, sizeof cp->err - (size_t)n, fmt, ap);
	va_end(ap);
}

/* 65536 -> "64K": limits read the way they are written. */
static const char *
config_fmt_size(uint64_t v, char *buf, size_t len)
{
	if (v != 0 && v % GIB == 0)
		snprintf(buf, len, "%" PRIu64 "G", v / GIB);
	else if (v != 0 && v % MIB == 0)
		snprintf(buf, len, "%" PRIu64 "M", v / MIB);
	else if (v != 0 && v % KIB == 0)
		snprintf(buf, len, "%" PRIu64 "K", v / KIB);
	else
		snprintf(buf, len, "%" PRIu64, v);
	return (buf);
}

static const struct config_key *
config_key_find(enum config_section section, const char *name)
{
	size_t	i;

	for (i = 0; i < CONFIG_NKEYS; i++) {
		if (config_keys[i].section == section &&
		    strcmp(config_keys[i].name, name) == 0)
			return (&config_keys[i]);
	}
	return (NULL);
}

static size_t
config_key_index(const struct config_key *k)
{
	return ((size_t)(k - config_keys));
}

static int
config_name_lookup(const struct config_name *names, const char *s, int *out)
{
	for (; names->name != NULL; names++) {
		if (strcasecmp(names->name, s) == 0) {
			*out = names->value;
			return (0);
		}
	}
	return (-1);
}

/* "a|b|c" for messages. */
static void
config_name_list(const struct config_name *names, char *buf, size_t len)
{
	size_t	off = 0;
	int	n;

	buf[0] = '\0';
	for (; names->name != NULL && off < len; names++) {
		n = snprintf(buf + off, len - off, "%s%s", off ? "|" : "",
		    names->name);
		if (n < 0)
			break;
		off += (size_t)n;
	}
}

/*
 * A decimal without sign or spaces (strtoull would take both, and "-1"
 * would wrap), then for byte keys an optional K, M or G, alone or as KiB.
 */
static int
config_parse_uint(const char *s, int bytes, uint64_t *out)
{
	uint64_t	v = 0, mult = 1;
	unsigned	d;

	if (!isdigit((unsigned char)*s))
		return (-1);
	for (; isdigit((unsigned char)*s); s++) {
		d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return (-1);
		v = v * 10 + d;
	}
	if (*s != '\0' && bytes) {
		switch (toupper((unsigned char)*s)) {
		case 'K':
			mult = KIB;
			break;
		case 'M':
			mult = MIB;
			break;
		case 'G':
			mult = GIB;
			break;
		default:
			return (-1);
		}
		s++;
		if (strcasecmp(s, "iB") == 0)
			s += 2;
		if (v > UINT64_MAX / mult)
			return (-1);
		v *= mult;
	}
	if (*s != '\0')
		return (-1);
	*out = v;
	return (0);
}

int
config_address_split(const char *addr, char *host, size_t hostlen,
    uint16_t *port)
{
	const char	*colon, *h, *p;
	size_t		 hlen;
	uint64_t	 v;

	colon = strrchr(addr, ':');
	if (colon == NULL)
		return (-1);
	h = addr;
	hlen = (size_t)(colon - addr);
	if (hlen > 0 && h[0] == '[') {
		/* [v6]:port */
		if (hlen < 3 || h[hlen - 1] != ']')
			return (-1);
		h++;
		hlen -= 2;
	} else if (memchr(h, ':', hlen) != NULL) {
		/* A bare IPv6 address: which colon starts the port? */
		return (-1);
	}
	if (hlen == 0)
		return (-1);
	for (p = h; p < h + hlen; p++) {
		if (!isgraph((unsigned char)*p) || *p == '[' || *p == ']' ||
		    *p == '/')
			return (-1);
	}
	p = colon + 1;
	if (strlen(p) > 5 || config_parse_uint(p, 0, &v) != 0 ||
	    v < 1 || v > 65535)
		return (-1);
	if (host != NULL) {
		if (hlen >= hostlen)
			return (-1);
		memcpy(host, h, hlen);
		host[hlen] = '\0';
	}
	if (port != NULL)
		*port = (uint16_t)v;
	return (0);
}

static void
config_key_default(const struct config_key *k, void *base)
{
	char	*field = (char *)base + k->off;
	int	 iv;

	switch (k->type) {
	case CONFIG_TYPE_UINT:
		if (k->size == sizeof(uint64_t)) {
			uint64_t v64 = k->dflt;

			memcpy(field, &v64, sizeof v64);
		} else {
			uint32_t v32 = (uint32_t)k->dflt;

			memcpy(field, &v32, sizeof v32);
		}
		break;
	case CONFIG_TYPE_BOOL:
	case CONFIG_TYPE_ENUM:
		iv = (int)k->dflt;
		memcpy(field, &iv, sizeof iv);
		break;
	case CONFIG_TYPE_STR:
	case CONFIG_TYPE_ADDR:
		snprintf(field, k->size, "%s", k->sdflt);
		break;
	}
}

static void
config_section_defaults(enum config_section section, void *base)
{
	size_t	i;

	for (i = 0; i < CONFIG_NKEYS; i++) {
		if (config_keys[i].section == section)
			config_key_default(&config_keys[i], base);
	}
}

/* Set one key from its text; the reason goes to why, without file:line. */
static int
config_key_set(const struct config_key *k, void *base, const char *value,
    char *why, size_t whylen)
{
	char		*field = (char *)base + k->off;
	char		 lo[32], hi[32], list[128];
	uint64_t	 v;
	int		 iv;

	switch (k->type) {
	case CONFIG_TYPE_UINT:
		if (config_parse_uint(value, k->flags & CONFIG_BYTES, &v) != 0 ||
		    v < k->min || v > k->max) {
			if (k->flags & CONFIG_BYTES) {
				config_seterr(why, whylen, "bad value '%s' for "
				    "%s (expected a size %s..%s, in bytes or "
				    "with a K, M or G suffix)", value, k->name,
				    config_fmt_size(k->min, lo, sizeof lo),
				    config_fmt_size(k->max, hi, sizeof hi));
			} else {
				config_seterr(why, whylen, "bad value '%s' for "
				    "%s (expected an integer %" PRIu64 "..%"
				    PRIu64 ")", value, k->name, k->min, k->max);
			}
			return (-1);
		}
		if (k->size == sizeof(uint64_t))
			memcpy(field, &v, sizeof v);
		else {
			uint32_t v32 = (uint32_t)v;

			memcpy(field, &v32, sizeof v32);
		}
		return (0);
	case CONFIG_TYPE_BOOL:
	case CONFIG_TYPE_ENUM:
		if (config_name_lookup(k->names, value, &iv) != 0) {
			config_name_list(k->names, list, sizeof list);
			config_seterr(why, whylen, "bad value '%s' for %s "
			    "(expected %s)", value, k->name, list);
			return (-1);
		}
		memcpy(field, &iv, sizeof iv);
		return (0);
	case CONFIG_TYPE_STR:
	case CONFIG_TYPE_ADDR:
		if (*value == '\0' && (k->flags & CONFIG_NONEMPTY)) {
			config_seterr(why, whylen, "empty value for %s",
			    k->name);
			return (-1);
		}
		if (strlen(value) >= k->size) {
			config_seterr(why, whylen, "value for %s too long (at "
			    "most %zu characters)", k->name, k->size - 1);
			return (-1);
		}
		if (k->type == CONFIG_TYPE_ADDR && *value != '\0' &&
		    config_address_split(value, NULL, 0, NULL) != 0) {
			config_seterr(why, whylen, "bad value '%s' for %s "
			    "(expected host:port with port 1..65535, [v6]:port "
			    "for IPv6)", value, k->name);
			return (-1);
		}
		snprintf(field, k->size, "%s", value);
		return (0);
	}
	return (-1);
}

/* Letters, digits, '.', '-', '_': names show up in metrics and muxctl. */
static int
config_svm_name_valid(const char *name)
{
	const char	*p;

	if (*name == '\0' || strlen(name) >= CONFIG_NAME_MAX)
		return (0);
	for (p = name; *p != '\0'; p++) {
		if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-' &&
		    *p != '_')
			return (0);
	}
	return (1);
}

int
config_svm_init(struct config_svm *svm, const char *name, char *err,
    size_t errlen)
{
	if (!config_svm_name_valid(name)) {
		config_seterr(err, errlen, "bad svm name '%s' (1 to %d letters, "
		    "digits, '.', '-' or '_')", name, CONFIG_NAME_MAX - 1);
		return (-1);
	}
	memset(svm, 0, sizeof *svm);
	snprintf(svm->name, sizeof svm->name, "%s", name);
	config_section_defaults(CONFIG_SECTION_SVM, svm);
	return (0);
}

int
config_svm_set(struct config_svm *svm, const char *key, const char *value,
    char *err, size_t errlen)
{
	const struct config_key	*k;

	if ((k = config_key_find(CONFIG_SECTION_SVM, key)) == NULL) {
		config_seterr(err, errlen, "unknown key '%s' in section "
		    "[svm %s]", key, svm->name);
		return (-1);
	}
	return (config_key_set(k, svm, value, err, errlen));
}

int
config_svm_check(struct config_svm *svm, char *err, size_t errlen)
{
	size_t	i;
	char	*field;

	for (i = 0; i < CONFIG_NKEYS; i++) {
		if (config_keys[i].section != CONFIG_SECTION_SVM ||
		    (config_keys[i].flags & CONFIG_REQUIRED) == 0)
			continue;
		/* Required keys are strings that may not be set empty. */
		field = (char *)svm + config_keys[i].off;
		if (*field == '\0') {
			config_seterr(err, errlen, "[svm %s] needs %s",
			    svm->name, config_keys[i].name);
			return (-1);
		}
	}
	if (svm->server_name[0] == '\0' &&
	    config_address_split(svm->address, svm->server_name,
	    sizeof svm->server_name, NULL) != 0) {
		config_seterr(err, errlen, "[svm %s] bad address '%s'",
		    svm->name, svm->address);
		return (-1);
	}
	return (0);
}

void
config_defaults(struct config *conf)
{
	memset(conf, 0, sizeof *conf);
	config_section_defaults(CONFIG_SECTION_MUX, conf);
	config_section_defaults(CONFIG_SECTION_LIMITS, conf);
	config_section_defaults(CONFIG_SECTION_TLS, conf);
	config_section_defaults(CONFIG_SECTION_METRICS, conf);

	/* SVMs see host_id in MuxHello; the host's name is the natural one. */
	if (gethostname(conf->host_id, sizeof conf->host_id - 1) != 0 ||
	    conf->host_id[0] == '\0')
		snprintf(conf->host_id, sizeof conf->host_id, "localhost");
	conf->host_id[sizeof conf->host_id - 1] = '\0';
}

const char *
config_log_level_name(enum log_level level)
{
	const struct config_name	*n;

	for (n = config_level_names; n->name != NULL; n++) {
		if (n->value == (int)level)
			return (n->name);
	}
	return ("unknown");
}

int
config_log_level_parse(const char *s, enum log_level *out)
{
	int	v;

	if (s == NULL || config_name_lookup(config_level_names, s, &v) != 0)
		return (-1);
	*out = (enum log_level)v;
	return (0);
}

const struct config_svm *
config_svm_find(const struct config *conf, const char *name)
{
	size_t	i;

	for (i = 0; i < conf->nsvms; i++) {
		if (strcmp(conf->svms[i].name, name) == 0)
			return (&conf->svms[i]);
	}
	return (NULL);
}

/* Row of set[] for the current section. */
static int *
config_set_row(struct config_parse *cp)
{
	if (cp->section == CONFIG_SECTION_SVM)
		return (cp->set[1 + (cp->svm - cp->conf.svms)]);
	return (cp->set[0]);
}

/*
 * The [svm NAME] just ended: required keys, derived server_name. A key
 * that was given with a bad value is not "missing": its own line has the
 * better message.
 */
static void
config_svm_end(struct config_parse *cp)
{
	char	 why[CONFIG_ERR_MAX];
	int	*row;
	size_t	 i;

	if (cp->section != CONFIG_SECTION_SVM)
		return;
	row = config_set_row(cp);
	for (i = 0; i < CONFIG_NKEYS; i++) {
		if (config_keys[i].section == CONFIG_SECTION_SVM &&
		    (config_keys[i].flags & CONFIG_REQUIRED) && row[i] == 0) {
			config_error(cp, cp->svm->line, "[svm %s] needs %s",
			    cp->svm->name, config_keys[i].name);
			return;
		}
	}
	/* A refused required value is already reported at its own line. */
	if (!cp->failed && config_svm_check(cp->svm, why, sizeof why) != 0)
		config_error(cp, cp->svm->line, "%s", why);
}

static void
config_section_svm(struct config_parse *cp, const char *name)
{
	struct config		*conf = &cp->conf;
	struct config_svm	*svm;
	char			 why[CONFIG_ERR_MAX];
	size_t			 i;

	if (*name == '\0') {
		config_error(cp, cp->line, "[svm] needs a name: [svm NAME]");
		return;
	}
	for (i = 0; i < conf->nsvms; i++) {
		if (strcmp(conf->svms[i].name, name) == 0) {
			config_error(cp, cp->line, "duplicate section [svm %s] "
			    "(first at line %d)", name, conf->svms[i].line);
			return;
		}
	}
	if (conf->nsvms == CONFIG_SVMS_MAX) {
		config_error(cp, cp->line, "too many [svm] sections (at most "
		    "%d)", CONFIG_SVMS_MAX);
		return;
	}
	svm = &conf->svms[conf->nsvms];
	if (config_svm_init(svm, name, why, sizeof why) != 0) {
		config_error(cp, cp->line, "%s", why);
		return;
	}
	svm->line = cp->line;
	conf->nsvms++;
	cp->svm = svm;
	cp->section = CONFIG_SECTION_SVM;
}

/*
 * A header line, seen by the reader before inih: s is the line without
 * leading blanks and without its end of line.
 */
static void
config_section(struct config_parse *cp, const char *s, size_t len)
{
	const char	*end, *rest, *name;
	char		 hdr[CONFIG_STR_MAX];
	size_t		 n, i;

	config_svm_end(cp);
	cp->section = CONFIG_SECTION_BAD;
	cp->svm = NULL;

	end = memchr(s, ']', len);
	if (end == NULL) {
		config_error(cp, cp->line, "bad section header '%.*s' "
		    "(missing ']')", (int)len, s);
		return;
	}
	for (rest = end + 1; rest < s + len && isspace((unsigned char)*rest);
	    rest++)
		;
	if (rest < s + len && *rest != ';' && *rest != '#') {
		config_error(cp, cp->line, "unexpected text after section "
		    "header: '%.*s'", (int)(s + len - rest), rest);
		return;
	}

	/* "[ svm  a ]" is "svm a": trim the name and the blanks in it. */
	name = s + 1;
	n = (size_t)(end - name);
	while (n > 0 && isspace((unsigned char)*name)) {
		name++;
		n--;
	}
	while (n > 0 && isspace((unsigned char)name[n - 1]))
		n--;
	if (n >= sizeof hdr) {
		config_error(cp, cp->line, "unknown section [%.*s]", (int)n,
		    name);
		return;
	}
	memcpy(hdr, name, n);
	hdr[n] = '\0';

	for (i = 0; i < CONFIG_NITEMS(config_section_names); i++) {
		if (config_section_names[i] != NULL &&
		    strcmp(hdr, config_section_names[i]) == 0) {
			cp->section = (enum config_section)i;
			return;
		}
	}
	if (strncmp(hdr, "svm", 3) == 0 &&
	    (hdr[3] == '\0' || isspace((unsigned char)hdr[3]))) {
		for (name = hdr + 3; isspace((unsigned char)*name); name++)
			;
		config_section_svm(cp, name);
		return;
	}
	config_error(cp, cp->line, "unknown section [%s]", hdr);
}

/*
 * inih's reader: hand out one line of the buffer. Lines are given to inih
 * without their leading blanks (no multi-line values) and the ones we
 * refuse are given as blank lines, once their error is recorded.
 */
static char *
config_reader(char *str, int num, void *arg)
{
	struct config_parse	*cp = arg;
	const char		*p, *eol, *nl, *end;
	size_t			 len;

	if (cp->pos >= cp->len || num < 3)
		return (NULL);
	p = cp->buf + cp->pos;
	end = cp->buf + cp->len;
	nl = memchr(p, '\n', (size_t)(end - p));
	eol = nl != NULL ? nl : end;
	cp->pos = (size_t)((nl != NULL ? nl + 1 : end) - cp->buf);
	cp->line++;

	str[0] = '\n';
	str[1] = '\0';
	if (memchr(p, '\0', (size_t)(eol - p)) != NULL) {
		config_error(cp, cp->line, "NUL byte in line (file damaged)");
		return (str);
	}
	if (cp->line == 1 && eol - p >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0)
		p += 3;
	while (p < eol && isspace((unsigned char)*p))
		p++;
	len = (size_t)(eol - p);
	if (len > 0 && p[len - 1] == '\r')
		len--;
	/* inih needs room for "\r\n\0" in its buffer. */
	if (len > (size_t)num - 3) {
		config_error(cp, cp->line, "line too long (more than %d "
		    "characters)", num - 3);
		return (str);
	}
	memcpy(str, p, len);
	str[len] = '\n';
	str[len + 1] = '\0';
	if (len > 0 && *p == '[')
		config_section(cp, p, len);
	return (str);
}

/*
 * inih's handler. The section comes from our reader, not from inih: inih
 * cuts section names at 50 characters.
 */
static int
config_handler(void *arg, const char *section, const char *name,
    const char *value)
{
	struct config_parse	*cp = arg;
	const struct config_key	*k;
	char			 where[CONFIG_NAME_MAX + 8];
	char			 why[CONFIG_ERR_MAX];
	void			*base;
	int			*row;
	size_t			 i;

	(void)section;
	switch (cp->section) {
	case CONFIG_SECTION_BAD:
		return (1);	/* reported at its header */
	case CONFIG_SECTION_NONE:
		config_error(cp, cp->line, "key '%s' outside any section",
		    name);
		return (0);
	case CONFIG_SECTION_SVM:
		snprintf(where, sizeof where, "svm %s", cp->svm->name);
		base = cp->svm;
		break;
	default:
		snprintf(where, sizeof where, "%s",
		    config_section_names[cp->section]);
		base = &cp->conf;
		break;
	}

	if ((k = config_key_find(cp->section, name)) == NULL) {
		config_error(cp, cp->line, "unknown key '%s' in section [%s]",
		    name, where);
		return (0);
	}
	i = config_key_index(k);
	row = config_set_row(cp);
	if (row[i] != 0) {
		/* Two values for one key: which one did the operator mean? */
		config_error(cp, cp->line, "duplicate key '%s' in section [%s] "
		    "(first at line %d)", name, where, row[i]);
		return (0);
	}
	/* Given, even if refused below: see config_svm_end. */
	row[i] = cp->line;
	if (config_key_set(k, base, value, why, sizeof why) != 0) {
		config_error(cp, cp->line, "%s", why);
		return (0);
	}
	return (1);
}

/* Line where a global key was set, 0 when it kept its default. */
static int
config_line_of(struct config_parse *cp, const char *name)
{
	size_t	i;

	for (i = 0; i < CONFIG_NKEYS; i++) {
		if (config_keys[i].section != CONFIG_SECTION_SVM &&
		    strcmp(config_keys[i].name, name) == 0)
			return (cp->set[0][i]);
	}
	return (0);
}

static int
config_later(struct config_parse *cp, const char *a, const char *b)
{
	int	la = config_line_of(cp, a), lb = config_line_of(cp, b);

	return (la > lb ? la : lb);
}

/* Rules between keys, on a file that parsed. */
static void
config_check(struct config_parse *cp)
{
	const struct config	*c = &cp->conf;
	char			 a[32], b[32];
	char			 ha[CONFIG_STR_MAX], hb[CONFIG_STR_MAX];
	uint16_t		 pa, pb;
	uint64_t		 need;
	size_t			 i, j;
	int			 line;

	need = (uint64_t)CONFIG_RING_FRAMES * c->agent_max_frame;
	if (c->ring_bytes < need) {
		config_error(cp, config_later(cp, "ring_bytes",
		    "agent_max_frame"), "ring_bytes (%s) must be at least %d * "
		    "agent_max_frame (%s)", config_fmt_size(c->ring_bytes, a,
		    sizeof a), CONFIG_RING_FRAMES, config_fmt_size(need, b,
		    sizeof b));
	}

	need = c->batch_max_bytes +
	    (uint64_t)CONFIG_BATCH_SLACK * c->agent_max_frame;
	if (c->svm_max_frame < need) {
		line = config_later(cp, "svm_max_frame", "batch_max_bytes");
		if (config_line_of(cp, "agent_max_frame") > line)
			line = config_line_of(cp, "agent_max_frame");
		config_error(cp, line, "svm_max_frame (%s) must be at least "
		    "batch_max_bytes + %d * agent_max_frame (%s)",
		    config_fmt_size(c->svm_max_frame, a, sizeof a),
		    CONFIG_BATCH_SLACK, config_fmt_size(need, b, sizeof b));
	}

	if (c->agent_max_connections_per_vm > c->max_agents) {
		config_error(cp, config_later(cp, "max_agents",
		    "agent_max_connections_per_vm"),
		    "agent_max_connections_per_vm (%" PRIu32 ") must not "
		    "exceed max_agents (%" PRIu32 ")",
		    c->agent_max_connections_per_vm, c->max_agents);
	}

	/* A client certificate without its key (or the reverse) is useless. */
	if ((c->tls_cert[0] == '\0') != (c->tls_key[0] == '\0')) {
		config_error(cp, config_later(cp, "cert", "key"),
		    "[tls] cert and key must be given together");
	}

	/* Two entries dialling one SVM would double its events. */
	for (i = 0; i < c->nsvms; i++) {
		if (config_address_split(c->svms[i].address, ha, sizeof ha,
		    &pa) != 0)
			continue;
		for (j = 0; j < i; j++) {
			if (config_address_split(c->svms[j].address, hb,
			    sizeof hb, &pb) != 0)
				continue;
			if (pa == pb && strcasecmp(ha, hb) == 0) {
				config_error(cp, c->svms[i].line, "[svm %s] has "
				    "the same address as [svm %s] (%s)",
				    c->svms[i].name, c->svms[j].name,
				    c->svms[i].address);
			}
		}
	}
}

/* Read the whole file; also returns its mode for the last-good copy. */
static int
config_read_file(const char *path, char **bufp, size_t *lenp, mode_t *modep,
    char *err, size_t errlen)
{
	struct stat	 st;
	char		*buf;
	size_t		 len = 0;
	ssize_t		 n;
	int		 fd, saved;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		config_seterr(err, errlen, "%s: cannot open: %s", path,
		    strerror(errno));
		return (-1);
	}
	if (fstat(fd, &st) == -1) {
		saved = errno;
		close(fd);
		config_seterr(err, errlen, "%s: cannot open: %s", path,
		    strerror(saved));
		return (-1);
	}
	/* One byte more than the limit tells "too large" from "exactly". */
	if ((buf = malloc(CONFIG_FILE_MAX + 1)) == NULL) {
		close(fd);
		config_seterr(err, errlen, "%s: out of memory", path);
		return (-1);
	}
	for (;;) {
		n = read(fd, buf + len, CONFIG_FILE_MAX + 1 - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			saved = errno;
			free(buf);
			close(fd);
			config_seterr(err, errlen, "%s: cannot read: %s", path,
			    strerror(saved));
			return (-1);
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > CONFIG_FILE_MAX) {
			free(buf);
			close(fd);
			config_seterr(err, errlen, "%s: too large (more than "
			    "%d bytes)", path, CONFIG_FILE_MAX);
			return (-1);
		}
	}
	close(fd);
	*bufp = buf;
	*lenp = len;
	if (modep != NULL)
		*modep = st.st_mode;
	return (0);
}

/* Parse buf (the contents of path) into a fresh configuration in *cpp. */
static int
config_parse_buf(const char *path, const char *buf, size_t len,
    struct config_parse **cpp, char *err, size_t errlen)
{
	struct config_parse	*cp;
	size_t			 i;
	int			 r;

	if (strlen(path) >= sizeof cp->conf.source) {
		config_seterr(err, errlen, "%s: path too long", path);
		return (-1);
	}
	if ((cp = calloc(1, sizeof *cp)) == NULL) {
		config_seterr(err, errlen, "%s: out of memory", path);
		return (-1);
	}
	config_defaults(&cp->conf);
	cp->path = path;
	cp->buf = buf;
	cp->len = len;

	/*
	 * A full disk or a crash leaves zero-length files: "all defaults"
	 * would drop every [svm] silently, so an empty file is damaged.
	 */
	for (i = 0; i < len; i++) {
		if (!isspace((unsigned char)buf[i]))
			break;
	}
	if (i == len) {
		config_error(cp, 0, "empty file (treated as damaged)");
		goto fail;
	}

	r = ini_parse_stream(config_reader, cp, config_handler, cp);
	config_svm_end(cp);
	if (r < 0) {
		/* Only a failed allocation, inih never opens the file here. */
		config_seterr(err, errlen, "%s: out of memory", path);
		free(cp);
		return (-1);
	}
	/* A line inih could not split that we did not already explain. */
	if (r > 0 && (!cp->failed || r < cp->err_line)) {
		config_error(cp, r, "syntax error (expected '[section]', "
		    "'key = value' or a comment)");
	}
	if (!cp->failed)
		config_check(cp);
	if (cp->failed)
		goto fail;

	snprintf(cp->conf.source, sizeof cp->conf.source, "%s", path);
	cp->conf.from_last_good = 0;
	*cpp = cp;
	return (0);

fail:
	config_seterr(err, errlen, "%s", cp->err);
	free(cp);
	return (-1);
}

/* Write buf to path.last-good: temporary file, fsync, rename, fsync dir. */
static int
config_write_bytes(const char *path, const char *buf, size_t len, mode_t mode,
    char *err, size_t errlen)
{
	char		 lg[PATH_MAX], tmp[PATH_MAX], dir[PATH_MAX];
	const char	*slash, *what;
	size_t		 off = 0;
	ssize_t		 n;
	int		 fd = -1, dfd, saved, created = 0;

	if ((size_t)snprintf(lg, sizeof lg, "%s%s", path,
	    CONFIG_LAST_GOOD_SUFFIX) >= sizeof lg ||
	    (size_t)snprintf(tmp, sizeof tmp, "%s.tmp", lg) >= sizeof tmp) {
		config_seterr(err, errlen, "%s%s: path too long", path,
		    CONFIG_LAST_GOOD_SUFFIX);
		return (-1);
	}
	if ((slash = strrchr(path, '/')) == NULL)
		snprintf(dir, sizeof dir, ".");
	else if (slash == path)
		snprintf(dir, sizeof dir, "/");
	else
		snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);

	what = "cannot create";
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
	    0600);
	if (fd == -1)
		goto fail;
	created = 1;
	/*
	 * Same mode as the file itself, sticky bit included: ESXi saves
	 * only sticky files in /etc across a reboot.
	 */
	what = "cannot set mode of";
	if (fchmod(fd, mode & (S_IRWXU | S_IRWXG | S_IRWXO | S_ISVTX)) == -1)
		goto fail;
	what = "cannot write";
	while (off < len) {
		n = write(fd, buf + off, len - off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			goto fail;
		off += (size_t)n;
	}
	what = "cannot sync";
	if (fsync(fd) == -1)
		goto fail;
	what = "cannot close";
	n = close(fd);
	fd = -1;
	if (n == -1)
		goto fail;
	what = "cannot rename";
	if (rename(tmp, lg) == -1)
		goto fail;

	/* The rename itself is durable only once the folder is synced. */
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		config_seterr(err, errlen, "%s: cannot open folder: %s", dir,
		    strerror(errno));
		return (-1);
	}
	if (fsync(dfd) == -1 && errno != EINVAL && errno != ENOTSUP) {
		/* EINVAL, ENOTSUP: a file system without folder sync. */
		saved = errno;
		close(dfd);
		config_seterr(err, errlen, "%s: cannot sync folder: %s", dir,
		    strerror(saved));
		return (-1);
	}
	close(dfd);
	return (0);

fail:
	saved = errno;
	if (fd != -1)
		close(fd);
	if (created)
		unlink(tmp);
	config_seterr(err, errlen, "%s: %s: %s", tmp, what, strerror(saved));
	return (-1);
}

int
config_load(const char *path, struct config *out, char *err, size_t errlen)
{
	struct config_parse	*cp;
	char			*buf;
	size_t			 len;

	config_seterr(err, errlen, "%s", "");
	if (path == NULL) {
		config_seterr(err, errlen, "no configuration file given");
		return (-1);
	}
	if (config_read_file(path, &buf, &len, NULL, err, errlen) != 0)
		return (-1);
	if (config_parse_buf(path, buf, len, &cp, err, errlen) != 0) {
		free(buf);
		return (-1);
	}
	memcpy(out, &cp->conf, sizeof *out);
	free(cp);
	free(buf);
	return (0);
}

/*
 * The copy is made from the bytes that were just validated, never from a
 * second read of the file, which might have changed in between.
 */
int
config_write_last_good(const char *path, char *err, size_t errlen)
{
	struct config_parse	*cp;
	char			*buf;
	size_t			 len;
	mode_t			 mode;
	int			 r;

	config_seterr(err, errlen, "%s", "");
	if (config_read_file(path, &buf, &len, &mode, err, errlen) != 0)
		return (-1);
	if (config_parse_buf(path, buf, len, &cp, err, errlen) != 0) {
		free(buf);
		return (-1);
	}
	free(cp);
	r = config_write_bytes(path, buf, len, mode, err, errlen);
	free(buf);
	return (r);
}

int
config_start(const char *path, struct config *out, char *err, size_t errlen)
{
	struct config_parse	*cp;
	char			 lg[PATH_MAX], lgerr[CONFIG_ERR_MAX];
	char			 first[CONFIG_ERR_MAX];
	char			*buf;
	size_t			 len;
	mode_t			 mode;

	config_seterr(err, errlen, "%s", "");
	if (path == NULL) {
		config_defaults(out);
		return (0);
	}

	if (config_read_file(path, &buf, &len, &mode, first,
	    sizeof first) == 0) {
		if (config_parse_buf(path, buf, len, &cp, first,
		    sizeof first) == 0) {
			memcpy(out, &cp->conf, sizeof *out);
			free(cp);
			/* Running without a fresh copy is worth an alarm only. */
			config_write_bytes(path, buf, len, mode, err, errlen);
			free(buf);
			return (0);
		}
		free(buf);
	}

	if ((size_t)snprintf(lg, sizeof lg, "%s%s", path,
	    CONFIG_LAST_GOOD_SUFFIX) >= sizeof lg ||
	    config_load(lg, out, lgerr, sizeof lgerr) != 0) {
		if (strlen(path) + strlen(CONFIG_LAST_GOOD_SUFFIX) >= sizeof lg)
			snprintf(lgerr, sizeof lgerr, "last-good path too long");
		config_seterr(err, errlen, "%s; no usable last-good copy (%s)",
		    first, lgerr);
		return (-1);
	}
	out->from_last_good = 1;
	config_seterr(err, errlen, "%s", first);
	return (0);
}
