/*
 * config.h: muxd configuration (INI, parsed by libinih).
 *
 * Every key has a built-in default (config_defaults); a file only overrides.
 * Keys are declared once in the table in config.c. Unknown keys, bad values
 * and damaged files are reported as "file:line: reason". A zero-byte file is
 * damaged, not "all defaults".
 *
 * Last-good copy: after every successful load of PATH, PATH.last-good is
 * written atomically (temporary file, fsync, rename, fsync of the folder).
 * config_start() falls back to it when PATH is bad at start-up.
 */
#ifndef MUX_CONFIG_H
#define MUX_CONFIG_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#define CONFIG_DEFAULT_PATH	"/etc/mux/muxd.conf"
#define CONFIG_LAST_GOOD_SUFFIX	".last-good"
#define CONFIG_NAME_MAX		64
#define CONFIG_STR_MAX		256
#define CONFIG_SVMS_MAX		64
#define CONFIG_ERR_MAX		512

enum config_transport {
	CONFIG_TRANSPORT_VSOCK = 1,
	CONFIG_TRANSPORT_UNIX,
};

enum config_slow_svm {
	CONFIG_SLOW_SVM_GAP = 1,
	CONFIG_SLOW_SVM_DISCONNECT,
};

/* Log levels, also used by log.c. */
enum log_level {
	LOG_LEVEL_OFF = 0,
	LOG_LEVEL_ERROR,
	LOG_LEVEL_WARN,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG,
	LOG_LEVEL_TRACE,
};

struct config_svm {
	char		name[CONFIG_NAME_MAX];		/* [svm NAME] */
	char		address[CONFIG_STR_MAX];	/* host:port, required */
	char		service_id[CONFIG_STR_MAX];	/* required */
	int		tls;				/* 1 (default) or 0 */
	char		server_name[CONFIG_STR_MAX];	/* default: host of address */
	int		line;				/* where the section starts */
};

struct config {
	/* [mux] */
	char		host_id[CONFIG_STR_MAX];	/* default: gethostname() */
	enum config_transport transport;		/* default vsock */
	uint32_t	agent_port;			/* default 5011 */
	char		agent_path[108];		/* default /var/run/mux/agent.sock */
	char		control_path[108];		/* default /var/run/mux/control.sock */
	enum log_level	log_level;			/* default info */
	int		fail_closed;			/* default 0 */
	uint32_t	verdict_timeout_ms;		/* default 3000 */
	uint32_t	heartbeat_ms;			/* default 5000 */
	char		vm_map[PATH_MAX];		/* default "" (none) */

	/* [limits] */
	uint32_t	agent_max_frame;		/* default 64 KiB */
	uint32_t	svm_max_frame;			/* default 4 MiB */
	uint64_t	ring_bytes;			/* default 64 MiB */
	uint32_t	ring_events;			/* default 1048576 */
	uint32_t	agent_max_events_per_sec;	/* default 200000, per VM */
	uint64_t	agent_max_bytes_per_sec;	/* default 256 MiB, per VM */
	uint32_t	agent_max_pending_verdicts;	/* default 10000, per VM */
	uint32_t	max_agents;			/* default 4096 connections */
	uint32_t	agent_max_connections_per_vm;	/* default 8 */
	enum config_slow_svm slow_svm;			/* default gap */
	uint32_t	svm_window;			/* default 8192 */
	uint32_t	batch_max_events;		/* default 512 */
	uint32_t	batch_max_bytes;		/* default 1 MiB */
	uint32_t	batch_linger_us;		/* default 2000 */

	/* [tls] */
	char		tls_ca[PATH_MAX];
	char		tls_cert[PATH_MAX];
	char		tls_key[PATH_MAX];

	/* [metrics] */
	char		metrics_listen[CONFIG_STR_MAX];	/* "" = off */

	struct config_svm svms[CONFIG_SVMS_MAX];
	size_t		nsvms;

	char		source[PATH_MAX];		/* file loaded, "" = defaults */
	int		from_last_good;			/* start-up fell back */
};

/* config.c */
void	 config_defaults(struct config *);
/* Parse path over the defaults. 0 ok; -1 with err = "file:line: reason". */
int	 config_load(const char *path, struct config *, char *err, size_t errlen);
/*
 * Start-up: load path; on success write the last-good copy. On failure
 * report err and try the last-good copy (from_last_good = 1). -1 only when
 * neither loads.
 *
 * err is "" after a clean start. A return of 0 with err set needs an alarm:
 * with from_last_good = 1, err is path's own "file:line: reason"; with
 * from_last_good = 0, path loaded but its last-good copy could not be
 * written (err says why). A NULL path gives the built-in defaults.
 */
int	 config_start(const char *path, struct config *, char *err, size_t errlen);
/* Copy path to path.last-good atomically, only if path parses. */
int	 config_write_last_good(const char *path, char *err, size_t errlen);
const char *config_log_level_name(enum log_level);
int	 config_log_level_parse(const char *, enum log_level *);
/* Look an [svm] entry up by name; NULL when absent. */
const struct config_svm *config_svm_find(const struct config *, const char *);
/*
 * The rules of the file, for entries made at run time (muxctl svm add):
 * init checks the name and sets the defaults, set takes one key as it would
 * appear in an [svm NAME] section, check enforces the required keys and
 * fills server_name. Messages carry no file:line.
 */
int	 config_svm_init(struct config_svm *, const char *name, char *err,
	     size_t errlen);
int	 config_svm_set(struct config_svm *, const char *key, const char *value,
	     char *err, size_t errlen);
int	 config_svm_check(struct config_svm *, char *err, size_t errlen);
/* Split "host:port" or "[v6]:port"; host and port may be NULL. 0 or -1. */
int	 config_address_split(const char *, char *host, size_t hostlen,
	     uint16_t *port);

#endif
