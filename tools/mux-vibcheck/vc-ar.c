/*
 * vc-ar.c: the ar container of a VIB.
 *
 * "!<arch>\n", then per member a 60-byte header (name 16, mtime 12, uid 6,
 * gid 6, mode 8, size 10, "`\n"), the data, and a '\n' pad to an even
 * offset. ESXi reads member names from the 16-byte field only: a GNU name
 * is "descriptor.xml/", a BSD one has no '/'. Long-name tables ("//",
 * "/NNN", "#1/NNN") and symbol tables ("/") are faults: ESXi's reader does
 * not know them, and a name that needs one is longer than 15 characters.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vibcheck.h"

#define AR_MAGIC	"!<arch>\n"
#define AR_MAGIC_LEN	8
#define AR_HDR_LEN	60
#define AR_NAME_LEN	16
#define AR_DATE_OFF	16
#define AR_DATE_LEN	12
#define AR_UID_OFF	28
#define AR_UID_LEN	6
#define AR_GID_OFF	34
#define AR_GID_LEN	6
#define AR_MODE_OFF	40
#define AR_MODE_LEN	8
#define AR_SIZE_OFF	48
#define AR_SIZE_LEN	10
#define AR_FMAG_OFF	58

/* The order ESXi insists on: these two first, then the payloads. */
static const char *const vc_ar_first[] = { "descriptor.xml", "sig.pkcs7" };

static int
vc_ar_size(const unsigned char *f, size_t *sizep)
{
	size_t	v = 0, i = 0;

	while (i < AR_SIZE_LEN && f[i] == ' ')
		i++;
	if (i == AR_SIZE_LEN)
		return -1;
	for (; i < AR_SIZE_LEN && f[i] != ' '; i++) {
		if (f[i] < '0' || f[i] > '9' || v > (SIZE_MAX - 9) / 10)
			return -1;
		v = v * 10 + (size_t)(f[i] - '0');
	}
	for (; i < AR_SIZE_LEN; i++)
		if (f[i] != ' ')
			return -1;
	*sizep = v;
	return 0;
}

/* A number field: digits of the base, then blanks. */
static int
vc_ar_number(const unsigned char *f, size_t len, int base)
{
	size_t	i = 0;

	while (i < len && f[i] >= '0' && f[i] < '0' + base)
		i++;
	if (i == 0)
		return -1;
	for (; i < len; i++)
		if (f[i] != ' ')
			return -1;
	return 0;
}

/* Member name from the 16-byte field; -1 with a reason when it is not one. */
static int
vc_ar_name(struct vc *vc, size_t idx, const unsigned char *f, char *name)
{
	size_t	len = AR_NAME_LEN;

	while (len > 0 && f[len - 1] == ' ')
		len--;
	if (len > 0 && f[0] == '/') {
		vc_fault(vc, "ar member %zu: name field '%.*s' is a %s (member "
		    "names must fit the 16-byte field: at most %d characters)",
		    idx + 1, (int)len, (const char *)f,
		    len == 1 ? "symbol table" : "long-name table entry",
		    VC_AR_NAME_MAX);
		return -1;
	}
	if (len >= 3 && memcmp(f, "#1/", 3) == 0) {
		vc_fault(vc, "ar member %zu: BSD long name '%.*s' (member "
		    "names must be at most %d characters)", idx + 1, (int)len,
		    (const char *)f, VC_AR_NAME_MAX);
		return -1;
	}
	if (len > 0 && f[len - 1] == '/')
		len--;			/* GNU terminator */
	if (len == 0) {
		vc_fault(vc, "ar member %zu: empty name", idx + 1);
		return -1;
	}
	if (len > VC_AR_NAME_MAX) {
		vc_fault(vc, "ar member %zu: name '%.*s' is %zu characters "
		    "long (at most %d)", idx + 1, (int)len, (const char *)f,
		    len, VC_AR_NAME_MAX);
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		if (f[i] < 0x21 || f[i] > 0x7e || f[i] == '/') {
			vc_fault(vc, "ar member %zu: bad character 0x%02x in "
			    "name", idx + 1, f[i]);
			return -1;
		}
	}
	memcpy(name, f, len);
	name[len] = '\0';
	return 0;
}

int
vc_ar_parse(struct vc *vc, const unsigned char *buf, size_t len,
    struct vc_member *m, size_t max, size_t *np)
{
	size_t	off = AR_MAGIC_LEN, n = 0, size;

	if (len < AR_MAGIC_LEN || memcmp(buf, AR_MAGIC, AR_MAGIC_LEN) != 0) {
		vc_fault(vc, "ar: bad magic (a VIB is an ar archive starting "
		    "with \"!<arch>\\n\")");
		return -1;
	}
	while (off < len) {
		const unsigned char *h = buf + off;

		if (len - off < AR_HDR_LEN) {
			vc_fault(vc, "ar: truncated header at offset %zu", off);
			return -1;
		}
		if (h[AR_FMAG_OFF] != '`' || h[AR_FMAG_OFF + 1] != '\n') {
			vc_fault(vc, "ar: bad header at offset %zu (no \"`\\n\" "
			    "terminator)", off);
			return -1;
		}
		if (n == max) {
			vc_fault(vc, "ar: more than %zu members", max);
			return -1;
		}
		/* The name first: a long-name table has blank number fields. */
		if (vc_ar_name(vc, n, h, m[n].name) == -1)
			return -1;
		if (vc_ar_number(h + AR_DATE_OFF, AR_DATE_LEN, 10) == -1 ||
		    vc_ar_number(h + AR_UID_OFF, AR_UID_LEN, 10) == -1 ||
		    vc_ar_number(h + AR_GID_OFF, AR_GID_LEN, 10) == -1 ||
		    vc_ar_number(h + AR_MODE_OFF, AR_MODE_LEN, 8) == -1) {
			vc_fault(vc, "ar: bad date, uid, gid or mode field in "
			    "the header at offset %zu", off);
			return -1;
		}
		if (vc_ar_size(h + AR_SIZE_OFF, &size) == -1) {
			vc_fault(vc, "ar: bad size field at offset %zu", off);
			return -1;
		}
		if (size > len - off - AR_HDR_LEN) {
			vc_fault(vc, "ar member %zu: %zu bytes, but only %zu "
			    "left in the file (truncated)", n + 1, size,
			    len - off - AR_HDR_LEN);
			return -1;
		}
		for (size_t i = 0; i < n; i++) {
			if (strcmp(m[i].name, m[n].name) == 0) {
				vc_fault(vc, "ar: member '%s' appears twice",
				    m[n].name);
				return -1;
			}
		}
		m[n].data = h + AR_HDR_LEN;
		m[n].size = size;
		n++;
		off += AR_HDR_LEN + size;
		if (size % 2 == 1 && off < len) {
			if (buf[off] != '\n') {
				vc_fault(vc, "ar member %zu: pad byte after odd "
				    "size is not '\\n'", n);
				return -1;
			}
			off++;
		}
	}
	*np = n;
	return 0;
}

void
vc_ar_check_order(struct vc *vc, const struct vc_member *m, size_t n)
{
	size_t	nfirst = sizeof(vc_ar_first) / sizeof(vc_ar_first[0]);

	for (size_t i = 0; i < nfirst; i++) {
		if (i >= n) {
			vc_fault(vc, "member order: only %zu member%s, expected "
			    "'%s' as member %zu", n, n == 1 ? "" : "s",
			    vc_ar_first[i], i + 1);
			return;
		}
		if (strcmp(m[i].name, vc_ar_first[i]) != 0) {
			vc_fault(vc, "member order: member %zu is '%s', "
			    "expected '%s' (order: descriptor.xml, sig.pkcs7, "
			    "payloads)", i + 1, m[i].name, vc_ar_first[i]);
			return;
		}
	}
	if (n == nfirst)
		vc_fault(vc, "member order: no payload after sig.pkcs7");
}
