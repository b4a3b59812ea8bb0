/*
 * vc-payload.c: the tgz payloads of a VIB.
 *
 * Per payload: the size and sha-256 of the ar member as stored, gunzip
 * through zlib (a gzip header without name or time, as gzip -n writes it,
 * and nothing after the stream), sha-256 and sha-1 of the tar, then every
 * tar entry: ustar or GNU headers with good header checksums (no pax
 * headers, no GNU long names, no hard links), relative paths without '.'
 * or '..', owner 0:0, every directory an entry of its own, nothing
 * set-id or writable by group or others, and per kind of file:
 *
 *   etc/init.d/NAME        executable, "#!/bin/sh", a "# chkconfig:" line
 *   other files in etc/    mode 1644: ESXi keeps only sticky files in /etc
 *   (except etc/vmware/)   across a reboot
 *   ELF files              executable, static x86-64 (vc-elf.c)
 *   files in bin/, sbin/   executable
 *
 * The files (not directories) of all payloads are kept in a struct
 * vc_files for the comparison with the descriptor's file list.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "vibcheck.h"

#define TAR_BLOCK	512
#define TAR_PATH_MAX	(155 + 1 + 100)
#define TAR_CHUNK	(1u << 20)
#define GZ_FLG_FNAME	0x08

struct vc_file {
	char		 path[TAR_PATH_MAX + 1];
	int		 dir;
	const char	*payload;
};

struct vc_files {
	struct vc_file	*v;
	size_t		 n;
	size_t		 cap;
};

struct vc_files *
vc_files_new(void)
{
	return calloc(1, sizeof(struct vc_files));
}

void
vc_files_free(struct vc_files *f)
{
	if (f == NULL)
		return;
	free(f->v);
	free(f);
}

static struct vc_file *
vc_files_find(const struct vc_files *f, const char *path)
{
	for (size_t i = 0; i < f->n; i++)
		if (strcmp(f->v[i].path, path) == 0)
			return &f->v[i];
	return NULL;
}

static int
vc_files_add(struct vc_files *f, const char *path, int dir,
    const char *payload)
{
	struct vc_file	*nv;

	if (f->n == f->cap) {
		size_t cap = f->cap ? 2 * f->cap : 64;

		if ((nv = realloc(f->v, cap * sizeof(*nv))) == NULL)
			return -1;
		f->v = nv;
		f->cap = cap;
	}
	snprintf(f->v[f->n].path, sizeof(f->v[f->n].path), "%s", path);
	f->v[f->n].dir = dir;
	f->v[f->n].payload = payload;
	f->n++;
	return 0;
}

/* gunzip a whole member; NULL after a fault. */
static unsigned char *
vc_payload_gunzip(struct vc *vc, const char *name, const unsigned char *in,
    size_t inlen, size_t *outlen)
{
	z_stream	 zs;
	unsigned char	*out = NULL, *nout;
	size_t		 cap = 0;
	int		 rc;

	if (inlen < 10 || in[0] != 0x1f || in[1] != 0x8b || in[2] != 8) {
		vc_fault(vc, "payload '%s': not gzip data (type tgz)", name);
		return NULL;
	}
	if ((in[3] & GZ_FLG_FNAME) != 0 || in[4] | in[5] | in[6] | in[7])
		vc_fault(vc, "payload '%s': gzip header carries a file name or "
		    "a time (not reproducible; compress with gzip -n)", name);
	memset(&zs, 0, sizeof(zs));
	if (inflateInit2(&zs, 15 + 16) != Z_OK) {
		vc_fault(vc, "payload '%s': zlib: inflateInit2 failed", name);
		return NULL;
	}
	zs.next_in = (unsigned char *)(uintptr_t)in;
	zs.avail_in = (uInt)inlen;
	do {
		if (zs.total_out == cap) {
			if (cap >= VC_TAR_MAX) {
				vc_fault(vc, "payload '%s': more than %u MiB "
				    "uncompressed", name, VC_TAR_MAX >> 20);
				goto fail;
			}
			cap += TAR_CHUNK;
			if ((nout = realloc(out, cap)) == NULL) {
				vc_fault(vc, "out of memory");
				goto fail;
			}
			out = nout;
		}
		zs.next_out = out + zs.total_out;
		zs.avail_out = (uInt)(cap - zs.total_out);
		rc = inflate(&zs, Z_NO_FLUSH);
		if (rc != Z_OK && rc != Z_STREAM_END) {
			vc_fault(vc, "payload '%s': gunzip failed: %s%s", name,
			    zs.msg ? zs.msg : "truncated or corrupt data",
			    rc == Z_BUF_ERROR ? " (truncated)" : "");
			goto fail;
		}
	} while (rc != Z_STREAM_END);
	if (zs.avail_in != 0)
		vc_fault(vc, "payload '%s': %u bytes after the end of the gzip "
		    "stream", name, zs.avail_in);
	*outlen = zs.total_out;
	inflateEnd(&zs);
	return out;
fail:
	inflateEnd(&zs);
	free(out);
	return NULL;
}

/* An octal tar number field; -1 when it is not one. */
static int
vc_tar_octal(const unsigned char *f, size_t len, uint64_t *vp)
{
	uint64_t	v = 0;
	size_t		i = 0;

	while (i < len && f[i] == ' ')
		i++;
	if (i == len || f[i] < '0' || f[i] > '7')
		return -1;
	for (; i < len && f[i] >= '0' && f[i] <= '7'; i++) {
		if (v >> 60)
			return -1;
		v = v * 8 + (uint64_t)(f[i] - '0');
	}
	for (; i < len; i++)
		if (f[i] != ' ' && f[i] != '\0')
			return -1;
	*vp = v;
	return 0;
}

static int
vc_tar_zero(const unsigned char *b)
{
	for (size_t i = 0; i < TAR_BLOCK; i++)
		if (b[i] != 0)
			return 0;
	return 1;
}

static int
vc_tar_path_ok(const char *p)
{
	const char	*c = p;

	if (*p == '\0' || *p == '/')
		return 0;
	while (*c != '\0') {
		size_t n = strcspn(c, "/");

		if (n == 0 || (n == 1 && c[0] == '.') ||
		    (n == 2 && c[0] == '.' && c[1] == '.'))
			return 0;
		c += n;
		if (*c == '/')
			c++;
	}
	return 1;
}

static int
vc_has_prefix(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* The rules per kind of file (see the top of the file). */
static void
vc_payload_file_rules(struct vc *vc, const char *pl, const char *path,
    unsigned mode, const unsigned char *data, size_t size)
{
	const char	*base = strrchr(path, '/');
	char		 why[256];
	int		 exec_all = (mode & 0111) == 0111;

	if (mode & 06000)
		vc_fault(vc, "mode: %s is %04o: set-id bits are not allowed",
		    path, mode);
	if (mode & 0022)
		vc_fault(vc, "mode: %s is %04o: writable by group or others",
		    path, mode);
	if (vc_has_prefix(path, "etc/init.d/")) {
		if (!exec_all || (mode & 0444) != 0444)
			vc_fault(vc, "mode: init script %s is %04o, expected "
			    "0755 or 0555 (executable)", path, mode);
		if (size < 9 || memcmp(data, "#!/bin/sh", 9) != 0)
			vc_fault(vc, "init script %s does not start with "
			    "#!/bin/sh (ESXi runs init scripts with busybox "
			    "sh)", path);
		if (memmem(data, size, "\n# chkconfig:", 13) == NULL)
			vc_fault(vc, "init script %s has no '# chkconfig:' "
			    "line", path);
	} else if (vc_has_prefix(path, "etc/") &&
	    !vc_has_prefix(path, "etc/vmware/")) {
		if (mode != 01644)
			vc_fault(vc, "mode: %s is %04o, expected 1644 (sticky: "
			    "ESXi keeps only sticky files in /etc across "
			    "reboots)", path, mode);
	}
	if (vc_elf_is_elf(data, size)) {
		if (!exec_all)
			vc_fault(vc, "mode: executable %s is %04o, expected "
			    "0755 or 0555", path, mode);
		if (vc_elf_check_static(data, size, why, sizeof(why)) == -1)
			vc_fault(vc, "static: payload '%s': %s: %s", pl, path,
			    why);
		else
			vc_info(vc, "%s: static x86-64 ELF", path);
	} else if (base != NULL && base - path >= 3 &&
	    (strncmp(base - 3, "bin", 3) == 0) && !exec_all)
		vc_fault(vc, "mode: %s in a bin folder is %04o, not executable",
		    path, mode);
}

static void
vc_payload_tar(struct vc *vc, const char *pl, const unsigned char *t,
    size_t len, struct vc_files *files)
{
	size_t		 off = 0, first = files->n;
	char		 path[TAR_PATH_MAX + 1];
	uint64_t	 sum, mode, uid, gid, size;
	int		 end = 0, posix;

	while (off + TAR_BLOCK <= len) {
		const unsigned char *h = t + off;
		unsigned calc = 0;
		char type;

		if (vc_tar_zero(h)) {
			end = 1;
			break;
		}
		for (size_t i = 0; i < TAR_BLOCK; i++)
			calc += (i >= 148 && i < 156) ? ' ' : h[i];
		if (vc_tar_octal(h + 148, 8, &sum) == -1 || sum != calc) {
			vc_fault(vc, "payload '%s': tar header at offset %zu: "
			    "bad header checksum", pl, off);
			return;
		}
		posix = memcmp(h + 257, "ustar\0" "00", 8) == 0;
		if (!posix && memcmp(h + 257, "ustar  \0", 8) != 0) {
			vc_fault(vc, "payload '%s': tar header at offset %zu is "
			    "neither ustar nor GNU tar", pl, off);
			return;
		}
		type = (char)h[156];
		if (vc_tar_octal(h + 100, 8, &mode) == -1 ||
		    vc_tar_octal(h + 108, 8, &uid) == -1 ||
		    vc_tar_octal(h + 116, 8, &gid) == -1 ||
		    vc_tar_octal(h + 124, 12, &size) == -1) {
			vc_fault(vc, "payload '%s': tar header at offset %zu: "
			    "bad number field", pl, off);
			return;
		}
		if (posix && h[345] != '\0')
			snprintf(path, sizeof(path), "%.155s/%.100s",
			    (const char *)h + 345, (const char *)h);
		else
			snprintf(path, sizeof(path), "%.100s",
			    (const char *)h);
		off += TAR_BLOCK;
		if (size > len - off) {
			vc_fault(vc, "payload '%s': tar entry '%s' is truncated",
			    pl, path);
			return;
		}
		if (type == 'x' || type == 'g') {
			vc_fault(vc, "payload '%s': pax header in the tar (ESXi "
			    "wants plain ustar or GNU tar)", pl);
			return;
		}
		if (type == 'L' || type == 'K') {
			vc_fault(vc, "payload '%s': GNU long name entry (paths "
			    "must fit the ustar header)", pl);
			return;
		}
		if (type == '5' && path[0] != '\0' &&
		    path[strlen(path) - 1] == '/')
			path[strlen(path) - 1] = '\0';
		if (!vc_tar_path_ok(path))
			vc_fault(vc, "payload '%s': tar path '%s' is not "
			    "relative to / (no leading '/', no '.' or '..')",
			    pl, path);
		if (uid != 0 || gid != 0)
			vc_fault(vc, "payload '%s': %s is owned by %llu:%llu, "
			    "expected 0:0", pl, path, (unsigned long long)uid,
			    (unsigned long long)gid);
		if (vc_files_find(files, path) != NULL)
			vc_fault(vc, "payload '%s': '%s' is in the payloads "
			    "twice", pl, path);
		switch (type) {
		case '0':
		case '\0':
			vc_payload_file_rules(vc, pl, path, (unsigned)mode,
			    t + off, size);
			break;
		case '5':
			if ((mode & 0555) != 0555 || (mode & 0022) != 0)
				vc_fault(vc, "mode: directory %s is %04o, "
				    "expected 0755", path, (unsigned)mode);
			break;
		case '2':
			break;
		case '1':
			vc_fault(vc, "payload '%s': %s is a hard link (not "
			    "supported)", pl, path);
			break;
		default:
			vc_fault(vc, "payload '%s': %s has tar entry type '%c' "
			    "(only files, directories and symbolic links)", pl,
			    path, type);
		}
		if (vc_files_add(files, path, type == '5', pl) == -1) {
			vc_fault(vc, "out of memory");
			return;
		}
		off += (size + TAR_BLOCK - 1) / TAR_BLOCK * TAR_BLOCK;
	}
	if (!end)
		vc_fault(vc, "payload '%s': tar has no end-of-archive block",
		    pl);
	/* Every parent folder of every entry is an entry of its own. */
	for (size_t i = first; i < files->n; i++) {
		char parent[TAR_PATH_MAX + 1], *slash;
		const struct vc_file *d;

		snprintf(parent, sizeof(parent), "%s", files->v[i].path);
		while ((slash = strrchr(parent, '/')) != NULL) {
			*slash = '\0';
			d = vc_files_find(files, parent);
			if (d == NULL || !d->dir) {
				vc_fault(vc, "payload '%s': directory '%s' (of "
				    "'%s') has no entry of its own", pl, parent,
				    files->v[i].path);
				break;
			}
		}
	}
}

void
vc_payload_check(struct vc *vc, const struct vc_payload_desc *p,
    const struct vc_member *m, struct vc_files *files)
{
	char		 hex[2 * 64 + 1] = "";
	unsigned char	*tar;
	size_t		 tarlen;

	if (p->size_ok && p->size != m->size)
		vc_fault(vc, "size: payload '%s' is %zu bytes, descriptor.xml "
		    "says %llu", p->name, m->size,
		    (unsigned long long)p->size);
	if (p->sha256 != NULL &&
	    (vc_digest_hex("sha256", m->data, m->size, hex, sizeof(hex)) ==
	    -1 || strcmp(hex, p->sha256) != 0))
		vc_fault(vc, "checksum: sha-256 of payload '%s' as stored is "
		    "%s, descriptor.xml says %s", p->name, hex, p->sha256);
	if ((tar = vc_payload_gunzip(vc, p->name, m->data, m->size,
	    &tarlen)) == NULL)
		return;
	if (p->sha256_gunzip != NULL &&
	    (vc_digest_hex("sha256", tar, tarlen, hex, sizeof(hex)) == -1 ||
	    strcmp(hex, p->sha256_gunzip) != 0))
		vc_fault(vc, "checksum: gunzip sha-256 of payload '%s' is %s, "
		    "descriptor.xml says %s", p->name, hex, p->sha256_gunzip);
	if (p->sha1_gunzip != NULL &&
	    (vc_digest_hex("sha1", tar, tarlen, hex, sizeof(hex)) == -1 ||
	    strcmp(hex, p->sha1_gunzip) != 0))
		vc_fault(vc, "checksum: gunzip sha-1 of payload '%s' is %s, "
		    "descriptor.xml says %s", p->name, hex, p->sha1_gunzip);
	vc_info(vc, "payload %s: %zu bytes, %zu uncompressed", p->name,
	    m->size, tarlen);
	vc_payload_tar(vc, p->name, tar, tarlen, files);
	free(tar);
}

void
vc_payload_check_list(struct vc *vc, const struct vc_desc *d,
    const struct vc_files *files)
{
	const struct vc_file	*f;

	for (size_t i = 0; i < d->nfiles; i++) {
		f = vc_files_find(files, d->files[i]);
		if (f == NULL)
			vc_fault(vc, "file list: '%s' is in descriptor.xml but "
			    "in no payload", d->files[i]);
		else if (f->dir)
			vc_fault(vc, "file list: '%s' is a directory (the list "
			    "names files only)", d->files[i]);
	}
	for (size_t i = 0; i < files->n; i++) {
		size_t j;

		if (files->v[i].dir)
			continue;
		for (j = 0; j < d->nfiles; j++)
			if (strcmp(d->files[j], files->v[i].path) == 0)
				break;
		if (j == d->nfiles)
			vc_fault(vc, "file list: '%s' of payload '%s' is not in "
			    "descriptor.xml's file list", files->v[i].path,
			    files->v[i].payload);
	}
}
