/*
 * vc-desc.c: descriptor.xml of a VIB.
 *
 * The root is <vib version="5.0">; its children must be exactly the
 * elements of vc_desc_order, each once, in that order (ESXi's reader is
 * schema-driven and a VIB that breaks the order is refused). Then the
 * values: type bootbank, an esx-version dependency, maintenance-mode, a
 * file list of relative file paths, an acceptance level, the switches, and
 * per payload a name (an ar member name, so at most 15 characters), type
 * tgz, size, and three checksums: sha-256 of the member as stored, and
 * sha-256 and sha-1 with verify-process="gunzip" over the uncompressed tar
 * (ESXi 8 refuses a VIB without the gunzip sha-256).
 *
 * The strings in struct vc_desc point into the XML tree, which must live
 * as long as the descriptor.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vibcheck.h"

static const char *const vc_desc_order[] = {
	"type", "name", "version", "vendor", "summary", "description",
	"release-date", "urls", "relationships", "software-tags",
	"system-requires", "file-list", "acceptance-level",
	"live-install-allowed", "live-remove-allowed", "cimom-restart",
	"stateless-ready", "overlay", "payloads",
};
#define VC_DESC_NORDER	(sizeof(vc_desc_order) / sizeof(vc_desc_order[0]))

static const char *const vc_desc_switches[] = {
	"live-install-allowed", "live-remove-allowed", "cimom-restart",
	"stateless-ready", "overlay",
};

static const char *const vc_desc_levels[] = {
	"community", "partner", "accepted", "certified",
};

static int
vc_desc_index(const char *name)
{
	for (size_t i = 0; i < VC_DESC_NORDER; i++)
		if (strcmp(vc_desc_order[i], name) == 0)
			return (int)i;
	return -1;
}

static int
vc_desc_is_bool(const char *s)
{
	return strcmp(s, "true") == 0 || strcmp(s, "false") == 0;
}

static int
vc_desc_is_hex(const char *s, size_t len)
{
	if (strlen(s) != len)
		return 0;
	for (; *s != '\0'; s++)
		if (!isdigit((unsigned char)*s) && (*s < 'a' || *s > 'f'))
			return 0;
	return 1;
}

/* Letters, digits and the given punctuation, not empty. */
static int
vc_desc_chars(const char *s, const char *punct)
{
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++)
		if (!isalnum((unsigned char)*s) && strchr(punct, *s) == NULL)
			return 0;
	return 1;
}

/* YYYY-MM-DDTHH:MM:SS, then optional fraction and zone. */
static int
vc_desc_is_date(const char *s)
{
	static const char	pat[] = "dddd-dd-ddTdd:dd:dd";

	for (size_t i = 0; i < sizeof(pat) - 1; i++) {
		if (s[i] == '\0')
			return 0;
		if (pat[i] == 'd' ? !isdigit((unsigned char)s[i]) :
		    s[i] != pat[i])
			return 0;
	}
	return vc_desc_chars(s, "-:.+TZ");
}

/* VERSION-RELEASE, e.g. 0.1.0-12.3fa2c1d9e0. */
static int
vc_desc_is_version(const char *s)
{
	const char	*dash = strchr(s, '-');

	if (dash == NULL || dash == s || dash[1] == '\0' ||
	    strchr(dash + 1, '-') != NULL)
		return 0;
	return vc_desc_chars(s, ".-");
}

static int
vc_desc_order_check(struct vc *vc, const struct vc_xml *root,
    const struct vc_xml **el)
{
	int	last = -1, ok = 1;

	for (size_t i = 0; i < root->nkids; i++) {
		const struct vc_xml *k = root->kids[i];
		int idx = vc_desc_index(k->name);

		if (idx == -1) {
			vc_fault(vc, "descriptor.xml:%d: unknown element <%s> "
			    "in <vib>", k->line, k->name);
			ok = 0;
			continue;
		}
		if (el[idx] != NULL) {
			vc_fault(vc, "descriptor.xml:%d: element <%s> appears "
			    "twice", k->line, k->name);
			ok = 0;
			continue;
		}
		if (idx < last) {
			vc_fault(vc, "descriptor.xml:%d: element order: <%s> "
			    "must come before <%s>", k->line, k->name,
			    vc_desc_order[last]);
			ok = 0;
		} else
			last = idx;
		el[idx] = k;
	}
	for (size_t i = 0; i < VC_DESC_NORDER; i++) {
		if (el[i] == NULL) {
			vc_fault(vc, "descriptor.xml: missing required element "
			    "<%s>", vc_desc_order[i]);
			ok = 0;
		}
	}
	return ok ? 0 : -1;
}

static void
vc_desc_relationships(struct vc *vc, const struct vc_xml *rel)
{
	const struct vc_xml	*dep = vc_xml_child(rel, "depends");

	if (dep != NULL) {
		for (size_t i = 0; i < dep->nkids; i++) {
			const struct vc_xml *c = dep->kids[i];
			const char *n = vc_xml_attr(c, "name");
			const char *r = vc_xml_attr(c, "relation");
			const char *v = vc_xml_attr(c, "version");

			if (strcmp(c->name, "constraint") != 0 || n == NULL ||
			    strcmp(n, "esx-version") != 0)
				continue;
			if (r == NULL || v == NULL || strcmp(r, ">=") != 0) {
				vc_fault(vc, "descriptor.xml:%d: esx-version "
				    "constraint needs relation=\">=\" and a "
				    "version", c->line);
				return;
			}
			vc_info(vc, "depends on esx-version >= %s", v);
			return;
		}
	}
	vc_fault(vc, "descriptor.xml:%d: <relationships> has no "
	    "<depends><constraint name=\"esx-version\" .../></depends>",
	    rel->line);
}

static void
vc_desc_files(struct vc *vc, const struct vc_xml *fl, struct vc_desc *d)
{
	if ((d->files = calloc(fl->nkids + 1, sizeof(*d->files))) == NULL) {
		vc_fault(vc, "out of memory");
		return;
	}
	for (size_t i = 0; i < fl->nkids; i++) {
		const struct vc_xml *f = fl->kids[i];
		const char *p = vc_xml_text(f);

		if (strcmp(f->name, "file") != 0) {
			vc_fault(vc, "descriptor.xml:%d: <%s> in <file-list> "
			    "(only <file>)", f->line, f->name);
			continue;
		}
		if (*p == '\0' || *p == '/' || p[strlen(p) - 1] == '/' ||
		    strstr(p, "//") != NULL || strncmp(p, "./", 2) == 0 ||
		    strcmp(p, "..") == 0 || strncmp(p, "../", 3) == 0 ||
		    strstr(p, "/../") != NULL || strstr(p, "/./") != NULL ||
		    isspace((unsigned char)*p) ||
		    isspace((unsigned char)p[strlen(p) - 1])) {
			vc_fault(vc, "descriptor.xml:%d: file list: '%s' is "
			    "not a relative file path (no leading '/', no "
			    "directories, no '.' or '..')", f->line, p);
			continue;
		}
		for (size_t j = 0; j < d->nfiles; j++) {
			if (strcmp(d->files[j], p) == 0) {
				vc_fault(vc, "descriptor.xml:%d: file list: "
				    "'%s' listed twice", f->line, p);
				p = NULL;
				break;
			}
		}
		if (p != NULL)
			d->files[d->nfiles++] = p;
	}
}

static void
vc_desc_payload(struct vc *vc, const struct vc_xml *x,
    struct vc_payload_desc *p)
{
	const char	*size = vc_xml_attr(x, "size");
	char		*end;

	p->name = vc_xml_attr(x, "name");
	p->type = vc_xml_attr(x, "type");
	if (p->name == NULL || *p->name == '\0') {
		vc_fault(vc, "descriptor.xml:%d: <payload> without a name",
		    x->line);
		p->name = NULL;
		return;
	}
	if (strlen(p->name) > VC_AR_NAME_MAX || !vc_desc_chars(p->name, "._-"))
		vc_fault(vc, "descriptor.xml:%d: payload name '%s' is not an ar "
		    "member name of at most %d letters, digits, '.', '_', '-'",
		    x->line, p->name, VC_AR_NAME_MAX);
	if (strcmp(p->name, "descriptor.xml") == 0 ||
	    strcmp(p->name, "sig.pkcs7") == 0)
		vc_fault(vc, "descriptor.xml:%d: payload name '%s' is reserved",
		    x->line, p->name);
	if (p->type == NULL || strcmp(p->type, "tgz") != 0)
		vc_fault(vc, "descriptor.xml:%d: payload '%s' has type '%s' "
		    "(this checker and this product use tgz)", x->line, p->name,
		    p->type ? p->type : "(none)");
	if (size != NULL && *size >= '0' && *size <= '9') {
		p->size = strtoull(size, &end, 10);
		p->size_ok = *end == '\0';
	}
	if (!p->size_ok)
		vc_fault(vc, "descriptor.xml:%d: payload '%s' has no valid "
		    "size attribute", x->line, p->name);

	for (size_t i = 0; i < x->nkids; i++) {
		const struct vc_xml *c = x->kids[i];
		const char *t = vc_xml_attr(c, "checksum-type");
		const char *vp = vc_xml_attr(c, "verify-process");
		const char *v = vc_xml_text(c);
		const char **slot = NULL;
		size_t hexlen = 0;

		if (strcmp(c->name, "checksum") != 0) {
			vc_fault(vc, "descriptor.xml:%d: <%s> in <payload> "
			    "(only <checksum>)", c->line, c->name);
			continue;
		}
		if (t != NULL && strcmp(t, "sha-256") == 0 && vp == NULL) {
			slot = &p->sha256;
			hexlen = VC_SHA256_HEX;
		} else if (t != NULL && strcmp(t, "sha-256") == 0 &&
		    strcmp(vp, "gunzip") == 0) {
			slot = &p->sha256_gunzip;
			hexlen = VC_SHA256_HEX;
		} else if (t != NULL && strcmp(t, "sha-1") == 0 && vp != NULL &&
		    strcmp(vp, "gunzip") == 0) {
			slot = &p->sha1_gunzip;
			hexlen = VC_SHA1_HEX;
		} else {
			vc_fault(vc, "descriptor.xml:%d: payload '%s': "
			    "unexpected checksum (checksum-type '%s', "
			    "verify-process '%s')", c->line, p->name,
			    t ? t : "(none)", vp ? vp : "(none)");
			continue;
		}
		if (*slot != NULL) {
			vc_fault(vc, "descriptor.xml:%d: payload '%s': the same "
			    "checksum twice", c->line, p->name);
			continue;
		}
		if (!vc_desc_is_hex(v, hexlen)) {
			vc_fault(vc, "descriptor.xml:%d: payload '%s': checksum "
			    "'%s' is not %zu lower-case hex digits", c->line,
			    p->name, v, hexlen);
			continue;
		}
		*slot = v;
	}
	if (p->sha256 == NULL)
		vc_fault(vc, "descriptor.xml:%d: payload '%s': missing checksum "
		    "sha-256 of the payload as stored", x->line, p->name);
	if (p->sha256_gunzip == NULL)
		vc_fault(vc, "descriptor.xml:%d: payload '%s': missing gunzip "
		    "checksum sha-256 with verify-process=\"gunzip\" (ESXi 8 "
		    "refuses the VIB without it)", x->line, p->name);
	if (p->sha1_gunzip == NULL)
		vc_fault(vc, "descriptor.xml:%d: payload '%s': missing gunzip "
		    "checksum sha-1 with verify-process=\"gunzip\"", x->line,
		    p->name);
}

/* An element that holds elements holds no text besides blanks. */
static void
vc_desc_no_mixed(struct vc *vc, const struct vc_xml *x)
{
	const char	*t = vc_xml_text(x);

	if (x->nkids > 0) {
		while (*t != '\0' && isspace((unsigned char)*t))
			t++;
		if (*t != '\0')
			vc_fault(vc, "descriptor.xml:%d: text '%.20s' between the "
			    "elements of <%s>", x->line, t, x->name);
	}
	for (size_t i = 0; i < x->nkids; i++)
		vc_desc_no_mixed(vc, x->kids[i]);
}

int
vc_desc_check(struct vc *vc, const struct vc_xml *root, struct vc_desc *d)
{
	const struct vc_xml	*el[VC_DESC_NORDER] = { NULL };
	const struct vc_xml	*x;
	const char		*v;

	d->name = d->version = d->vendor = d->acceptance = "?";
	if (strcmp(root->name, "vib") != 0) {
		vc_fault(vc, "descriptor.xml: root element is <%s>, not <vib>",
		    root->name);
		return -1;
	}
	vc_desc_no_mixed(vc, root);
	v = vc_xml_attr(root, "version");
	if (v == NULL || strcmp(v, "5.0") != 0)
		vc_fault(vc, "descriptor.xml: <vib version=\"%s\">, expected "
		    "version=\"5.0\"", v ? v : "");
	if (vc_desc_order_check(vc, root, el) == -1 &&
	    (el[vc_desc_index("payloads")] == NULL ||
	    el[vc_desc_index("file-list")] == NULL))
		return -1;

#define EL(n)	el[vc_desc_index(n)]
#define TEXT(n)	(EL(n) != NULL ? vc_xml_text(EL(n)) : "")
	if (strcmp(TEXT("type"), "bootbank") != 0)
		vc_fault(vc, "descriptor.xml: <type> is '%s', expected "
		    "'bootbank'", TEXT("type"));
	d->name = TEXT("name");
	if (!vc_desc_chars(d->name, "._-"))
		vc_fault(vc, "descriptor.xml: <name> '%s' is not letters, "
		    "digits, '.', '_', '-'", d->name);
	d->version = TEXT("version");
	if (!vc_desc_is_version(d->version))
		vc_fault(vc, "descriptor.xml: <version> '%s' is not "
		    "VERSION-RELEASE (letters, digits and dots on both sides of "
		    "one '-')", d->version);
	d->vendor = TEXT("vendor");
	if (!vc_desc_chars(d->vendor, "._-"))
		vc_fault(vc, "descriptor.xml: <vendor> '%s' is not letters, "
		    "digits, '.', '_', '-'", d->vendor);
	if (*TEXT("summary") == '\0')
		vc_fault(vc, "descriptor.xml: <summary> is empty");
	if (!vc_desc_is_date(TEXT("release-date")))
		vc_fault(vc, "descriptor.xml: <release-date> '%s' is not "
		    "YYYY-MM-DDTHH:MM:SS", TEXT("release-date"));
	if (EL("relationships") != NULL)
		vc_desc_relationships(vc, EL("relationships"));
	if ((x = EL("system-requires")) != NULL) {
		const struct vc_xml *mm = vc_xml_child(x, "maintenance-mode");

		if (mm == NULL || !vc_desc_is_bool(vc_xml_text(mm)))
			vc_fault(vc, "descriptor.xml:%d: <system-requires> "
			    "needs <maintenance-mode>true|false"
			    "</maintenance-mode>", x->line);
	}
	d->acceptance = TEXT("acceptance-level");
	v = NULL;
	for (size_t i = 0; i < sizeof(vc_desc_levels) / sizeof(*vc_desc_levels);
	    i++)
		if (strcmp(d->acceptance, vc_desc_levels[i]) == 0)
			v = d->acceptance;
	if (v == NULL)
		vc_fault(vc, "descriptor.xml: <acceptance-level> '%s' is not "
		    "community, partner, accepted or certified", d->acceptance);
	for (size_t i = 0;
	    i < sizeof(vc_desc_switches) / sizeof(*vc_desc_switches); i++) {
		if (EL(vc_desc_switches[i]) != NULL &&
		    !vc_desc_is_bool(TEXT(vc_desc_switches[i])))
			vc_fault(vc, "descriptor.xml: <%s> is '%s', expected "
			    "true or false", vc_desc_switches[i],
			    TEXT(vc_desc_switches[i]));
	}
	vc_desc_files(vc, EL("file-list"), d);
	if (d->nfiles == 0)
		vc_fault(vc, "descriptor.xml: file list is empty");

	x = EL("payloads");
	if ((d->payloads = calloc(x->nkids + 1, sizeof(*d->payloads))) ==
	    NULL) {
		vc_fault(vc, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < x->nkids; i++) {
		struct vc_payload_desc *p = &d->payloads[d->npayloads];

		if (strcmp(x->kids[i]->name, "payload") != 0) {
			vc_fault(vc, "descriptor.xml:%d: <%s> in <payloads>",
			    x->kids[i]->line, x->kids[i]->name);
			continue;
		}
		vc_desc_payload(vc, x->kids[i], p);
		if (p->name == NULL)
			continue;
		for (size_t j = 0; j < d->npayloads; j++)
			if (strcmp(d->payloads[j].name, p->name) == 0) {
				vc_fault(vc, "descriptor.xml: payload '%s' "
				    "twice", p->name);
				p->name = NULL;
				break;
			}
		if (p->name != NULL)
			d->npayloads++;
	}
	if (d->npayloads == 0)
		vc_fault(vc, "descriptor.xml: no <payload>");
#undef EL
#undef TEXT
	vc_info(vc, "descriptor: %s %s by %s, %zu files, %zu payloads, %s",
	    d->name, d->version, d->vendor, d->nfiles, d->npayloads,
	    d->acceptance);
	return 0;
}

void
vc_desc_free(struct vc_desc *d)
{
	free(d->files);
	free(d->payloads);
}
