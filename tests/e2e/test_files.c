/*
 * test_files.c: end to end, file reads through the MUX (SvmReadFile ->
 * ReadFileRequest -> FileData -> FileData), checked byte for byte, and a
 * real ClamAV clamd behind the reference SVM's scan policy.
 */
#include "harness.h"

#include <sys/stat.h>

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#define SRC_SIZE	(100 * 1024)	/* more than three 32 KiB reads */
#define MARKER		"MUX-TEST-MARKER-7f3a9c1e-INFECTED"

static void
random_file(const char *path, size_t size, const char *marker, size_t at)
{
	unsigned char *buf = malloc(size);
	FILE *f;
	size_t i;

	assert_non_null(buf);
	srand(12345);
	for (i = 0; i < size; i++)
		buf[i] = (unsigned char)(rand() >> 7);
	if (marker != NULL)
		memcpy(buf + at, marker, strlen(marker));
	assert_non_null(f = fopen(path, "w"));
	assert_int_equal(fwrite(buf, 1, size, f), size);
	fclose(f);
	free(buf);
}

static unsigned char *
slurp(const char *path, size_t *len)
{
	unsigned char *buf;
	struct stat sb;
	FILE *f;

	if (stat(path, &sb) == -1 || (f = fopen(path, "r")) == NULL)
		return NULL;
	buf = malloc((size_t)sb.st_size + 1);
	assert_non_null(buf);
	*len = fread(buf, 1, (size_t)sb.st_size, f);
	fclose(f);
	return buf;
}

static void
sha256_hex(const unsigned char *p, size_t n, char out[65])
{
	unsigned char md[32];
	unsigned int len = 0;
	int i;

	assert_int_equal(EVP_Digest(p, n, md, &len, EVP_sha256(), NULL), 1);
	for (i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static void
test_file_read_roundtrip(void **state)
{
	struct e2e *e = *state;
	int port = e2e_free_port(), st, files = 0, lines = 0;
	char src[512], dir[512], rec[512], rule[600], extra[512], json[8192];
	char line[512], hex[65], want[65], path[1024];
	const char *sv[] = { "--service-id", "av", "--classes", "file", "--verdicts",
	    "--read-files", dir, "--record", rec, NULL };
	const char *lg[] = { "--agents", "2", "--rate", "100", "--duration", "2",
	    "--mix", "file=100", "--reply-share", "1", "--file-content", rule, NULL };
	unsigned char *a, *b;
	size_t alen, blen;
	struct dirent *de;
	unsigned long long seq, fid, size;
	unsigned int cid;
	pid_t svm;
	FILE *f;
	DIR *d;

	snprintf(src, sizeof(src), "%s", e2e_path(e, "source.bin"));
	snprintf(dir, sizeof(dir), "%s", e2e_path(e, "files"));
	snprintf(rec, sizeof(rec), "%s", e2e_path(e, "svm.rec"));
	snprintf(rule, sizeof(rule), "*=%s", src);
	assert_int_equal(mkdir(dir, 0755), 0);
	random_file(src, SRC_SIZE, NULL, 0);
	a = slurp(src, &alen);
	assert_int_equal(alen, SRC_SIZE);
	sha256_hex(a, alen, want);

	snprintf(extra, sizeof(extra), "[svm av]\naddress = 127.0.0.1:%d\n"
	    "service_id = av\ntls = off\n", port);
	e2e_conf(e, extra);
	svm = e2e_start_svm(e, "svm", port, sv);
	e2e_start_muxd(e);
	assert_int_equal(e2e_wait_svms_up(e, 1, 10000), 0);
	/* Every event waits for a verdict, given after its file was read. */
	st = e2e_run_loadgen(e, "loadgen", lg);
	assert_int_equal(e2e_last_json(e2e_path(e, "loadgen.out"), json, sizeof(json)), 0);
	print_message("loadgen: %.400s\n", json);
	assert_int_equal(st, 0);
	assert_true(e2e_json_i64(json, "file_reads") >= 4 * e2e_json_i64(json, "verdicts"));
	e2e_stop(e, svm, SIGTERM);
	assert_int_equal(e2e_last_json(e2e_path(e, "svm.out"), json, sizeof(json)), 0);
	print_message("svm: %.500s\n", json);
	assert_int_equal(e2e_json_i64(json, "file_read_errors"), 0);

	/* The record's FILE lines: whole file, same digest. */
	assert_non_null(f = fopen(rec, "r"));
	while (fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, "FILE %llu %u %llu %llu %64s", &seq, &cid, &fid,
		    &size, hex) != 5)
			continue;
		lines++;
		assert_int_equal(size, SRC_SIZE);
		assert_string_equal(hex, want);
	}
	fclose(f);
	assert_true(lines >= 50);
	/* And the files themselves, byte for byte. */
	assert_non_null(d = opendir(dir));
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		b = slurp(path, &blen);
		assert_non_null(b);
		assert_int_equal(blen, alen);
		assert_memory_equal(a, b, alen);
		free(b);
		files++;
	}
	closedir(d);
	print_message("%d reads of a %d-byte file, %d distinct files, all "
	    "byte-identical\n", lines, SRC_SIZE, files);
	assert_true(files >= 10);
	assert_true(e2e_metric(e, "mux_svm_requests_total") >= (uint64_t)(4 * lines));
	assert_int_equal(e2e_metric(e, "mux_svm_requests_failed_total"), 0);
	free(a);
}

/*
 * A real clamd, configured by the test with a signature it writes itself
 * (no network): the file carrying the signature is denied, clean ones
 * allowed, by the SVM's verdicts through muxd.
 */
static void
test_clamd_denies_signature(void **state)
{
	struct e2e *e = *state;
	int port = e2e_free_port(), st, deny = 0, allow = 0, wrong = 0, i;
	char conf[512], db[512], sock[600], bad[512], clean[512], vlog[512];
	char r1[600], r2[600], extra[512], json[8192], line[1024], pol[700];
	char act[16], reason[256], vpath[512], cls[16];
	const char *clamd_argv[4];
	const char *sv[] = { "--service-id", "av", "--verdicts", "--policy", pol,
	    "--record", NULL, NULL };
	const char *lg[] = { "--agents", "2", "--rate", "60", "--duration", "3",
	    "--mix", "file=100", "--reply-share", "1", "--file-content", r1,
	    "--file-content", r2, "--verdict-log", vlog, NULL };
	char bin[64] = "/usr/sbin/clamd", hex[2 * sizeof(MARKER) + 1];
	FILE *f;

	if (access(bin, X_OK) != 0)
		fail_msg("%s missing: make test installs clamav-daemon (tools/deps.sh)", bin);
	snprintf(conf, sizeof(conf), "%s", e2e_path(e, "clamd.conf"));
	snprintf(db, sizeof(db), "%s", e2e_path(e, "db"));
	snprintf(sock, sizeof(sock), "%s", e2e_path(e, "clamd.sock"));
	snprintf(bad, sizeof(bad), "%s", e2e_path(e, "infected.bin"));
	snprintf(clean, sizeof(clean), "%s", e2e_path(e, "clean.bin"));
	snprintf(vlog, sizeof(vlog), "%s", e2e_path(e, "verdicts.log"));
	assert_int_equal(mkdir(db, 0755), 0);
	/* One body signature: the marker, as hex, anywhere in the file. */
	for (i = 0; MARKER[i] != '\0'; i++)
		snprintf(hex + 2 * i, 3, "%02x", (unsigned char)MARKER[i]);
	snprintf(line, sizeof(line), "%s/muxtest.ndb", db);
	assert_non_null(f = fopen(line, "w"));
	fprintf(f, "MuxTestSig:0:*:%s\n", hex);
	fclose(f);
	assert_non_null(f = fopen(conf, "w"));
	fprintf(f, "LocalSocket %s\nDatabaseDirectory %s\nForeground yes\n"
	    "LogFile %s/clamd.log\nPidFile %s/clamd.pid\nTemporaryDirectory %s\n"
	    "Bytecode no\n", sock, db, e->dir, e->dir, e->dir);
	fclose(f);
	/* The marker straddles the first 32 KiB read. */
	random_file(bad, 80 * 1024, MARKER, 32 * 1024 - 10);
	random_file(clean, 80 * 1024, NULL, 0);
	snprintf(r1, sizeof(r1), "/home/user1/*=%s", bad);
	snprintf(r2, sizeof(r2), "/home/user2/*=%s", clean);

	snprintf(line, sizeof(line), "--config-file=%s", conf);
	clamd_argv[0] = bin;
	clamd_argv[1] = line;
	clamd_argv[2] = NULL;
	e2e_spawn(e, "clamd", clamd_argv);
	if (e2e_wait_path(sock, e2e_timeout_ms(e, 20000)) == -1)
		fail_msg("clamd did not open %s (see %s/clamd.log)", sock, e->dir);

	snprintf(pol, sizeof(pol), "scan:clamd:%s", sock);
	sv[6] = e2e_path(e, "svm.rec");
	snprintf(extra, sizeof(extra), "[svm av]\naddress = 127.0.0.1:%d\n"
	    "service_id = av\ntls = off\n", port);
	e2e_conf(e, extra);
	e2e_start_svm(e, "svm", port, sv);
	e2e_start_muxd(e);
	assert_int_equal(e2e_wait_svms_up(e, 1, 10000), 0);
	st = e2e_run_loadgen(e, "loadgen", lg);
	assert_int_equal(e2e_last_json(e2e_path(e, "loadgen.out"), json, sizeof(json)), 0);
	print_message("loadgen: %.500s\n", json);
	if (strstr(json, "\"verdicts_by_reason\"") != NULL)
		print_message("loadgen %.120s\n", strstr(json, "\"verdicts_by_reason\""));
	assert_int_equal(st, 0);
	assert_int_equal(e2e_json_i64(json, "timed_out"), 0);
	assert_int_equal(e2e_json_i64(json, "missing_verdicts"), 0);

	/* Every verdict: the infected path denied by its signature, the rest
	 * allowed as clean, all decided by the SVM. */
	assert_non_null(f = fopen(vlog, "r"));
	while (fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, "%*u %*u %*u %15s %511s %15s %255s", cls, vpath, act,
		    reason) != 4)
			continue;
		if (strcmp(act, "DENY") == 0) {
			deny++;
			if (strncmp(vpath, "/home/user1/", 12) != 0 ||
			    strcmp(reason, "clamd:_MuxTestSig.UNOFFICIAL") != 0)
				wrong++;
		} else if (strcmp(act, "ALLOW") == 0) {
			allow++;
			if (strncmp(vpath, "/home/user1/", 12) == 0 ||
			    strcmp(reason, "clamd:_OK") != 0)
				wrong++;
		}
		if (wrong == 1 && (deny + allow) > 0) {
			print_message("unexpected verdict: %s", line);
			wrong++;
		}
	}
	fclose(f);
	print_message("clamd verdicts: %d DENY (MuxTestSig, /home/user1/*), "
	    "%d ALLOW (clean), %d unexpected\n", deny, allow, wrong > 0 ? wrong - 1 : 0);
	assert_int_equal(wrong, 0);
	assert_true(deny > 0);
	assert_true(allow > 0);
	assert_int_equal(e2e_metric(e, "mux_verdicts_total{action=\"deny\",source=\"svm\"}"),
	    (uint64_t)deny);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_file_read_roundtrip, e2e_setup,
		    e2e_teardown),
		cmocka_unit_test_setup_teardown(test_clamd_denies_signature,
		    e2e_setup, e2e_teardown),
	};

	return cmocka_run_group_tests_name("e2e_files", tests, NULL, NULL);
}
