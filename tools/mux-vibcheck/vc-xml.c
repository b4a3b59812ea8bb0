/*
 * vc-xml.c: a small, strict XML reader for descriptor.xml.
 *
 * Enough of XML 1.0 for the documents VIB tools write: an optional
 * declaration, comments and processing instructions, one root element,
 * elements with attributes ('...' or "..."), character data with the five
 * predefined entities and character references. DOCTYPE and CDATA are
 * refused (descriptors have neither), and so is anything not well-formed:
 * a mismatched end tag, a '<' in an attribute, a second root, nesting
 * deeper than VC_XML_DEPTH_MAX. Errors carry the line number.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vibcheck.h"

struct vc_xml_in {
	const char	*p;
	const char	*end;
	int		 line;
	char		*err;
	size_t		 errlen;
};

static int
vc_xml_fail(struct vc_xml_in *in, const char *fmt, ...)
{
	va_list	ap;
	int	n;

	n = snprintf(in->err, in->errlen, "line %d: ", in->line);
	if (n < 0 || (size_t)n >= in->errlen)
		return -1;
	va_start(ap, fmt);
	vsnprintf(in->err + n, in->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

static void
vc_xml_advance(struct vc_xml_in *in, size_t n)
{
	for (size_t i = 0; i < n && in->p < in->end; i++, in->p++)
		if (*in->p == '\n')
			in->line++;
}

static int
vc_xml_starts(const struct vc_xml_in *in, const char *s)
{
	size_t	n = strlen(s);

	return (size_t)(in->end - in->p) >= n && memcmp(in->p, s, n) == 0;
}

/* Skip past the next occurrence of s; -1 if there is none. */
static int
vc_xml_skip_past(struct vc_xml_in *in, const char *s)
{
	while (in->p < in->end) {
		if (vc_xml_starts(in, s)) {
			vc_xml_advance(in, strlen(s));
			return 0;
		}
		vc_xml_advance(in, 1);
	}
	return -1;
}

static void
vc_xml_skip_space(struct vc_xml_in *in)
{
	while (in->p < in->end && (*in->p == ' ' || *in->p == '\t' ||
	    *in->p == '\r' || *in->p == '\n'))
		vc_xml_advance(in, 1);
}

static int
vc_xml_namechar(int c, int first)
{
	if (isalpha(c) || c == '_' || c == ':' || (c & 0x80))
		return 1;
	return !first && (isdigit(c) || c == '-' || c == '.');
}

static char *
vc_xml_name(struct vc_xml_in *in)
{
	const char	*s = in->p;
	char		*name;

	if (in->p >= in->end || !vc_xml_namechar((unsigned char)*in->p, 1))
		return NULL;
	while (in->p < in->end && vc_xml_namechar((unsigned char)*in->p, 0))
		in->p++;
	if ((name = strndup(s, (size_t)(in->p - s))) == NULL)
		return NULL;
	return name;
}

/* Append the UTF-8 form of code point cp. */
static size_t
vc_xml_utf8(unsigned long cp, char *out)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | (cp >> 18));
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/*
 * Decode [s, e) (character data or an attribute value) into a new string.
 * A decoded string is never longer than its source, so one allocation of
 * the source's length is enough.
 */
static char *
vc_xml_decode(struct vc_xml_in *in, const char *s, const char *e, int attr)
{
	static const struct {
		const char	*name;
		char		 c;
	} ents[] = {
		{ "lt;", '<' }, { "gt;", '>' }, { "amp;", '&' },
		{ "quot;", '"' }, { "apos;", '\'' },
	};
	char	*out, *o;

	if ((out = malloc((size_t)(e - s) + 1)) == NULL) {
		vc_xml_fail(in, "out of memory");
		return NULL;
	}
	for (o = out; s < e; ) {
		if (*s == '<' && attr) {
			free(out);
			vc_xml_fail(in, "'<' in an attribute value");
			return NULL;
		}
		if (*s != '&') {
			*o++ = *s++;
			continue;
		}
		s++;
		if (s < e && *s == '#') {
			unsigned long	 cp;
			char		*end;
			int		 hex = s + 1 < e && s[1] == 'x';

			cp = strtoul(s + 1 + hex, &end, hex ? 16 : 10);
			if (end == s + 1 + hex || end >= e || *end != ';' ||
			    cp == 0 || cp > 0x10ffff) {
				free(out);
				vc_xml_fail(in, "bad character reference");
				return NULL;
			}
			o += vc_xml_utf8(cp, o);
			s = end + 1;
			continue;
		}
		size_t i;
		for (i = 0; i < sizeof(ents) / sizeof(ents[0]); i++) {
			size_t	n = strlen(ents[i].name);

			if ((size_t)(e - s) >= n &&
			    memcmp(s, ents[i].name, n) == 0) {
				*o++ = ents[i].c;
				s += n;
				break;
			}
		}
		if (i == sizeof(ents) / sizeof(ents[0])) {
			free(out);
			vc_xml_fail(in, "unknown entity or bare '&'");
			return NULL;
		}
	}
	*o = '\0';
	return out;
}

static int
vc_xml_add_kid(struct vc_xml *x, struct vc_xml *kid)
{
	struct vc_xml	**nk;

	if ((nk = realloc(x->kids, (x->nkids + 1) * sizeof(*nk))) == NULL)
		return -1;
	nk[x->nkids++] = kid;
	x->kids = nk;
	return 0;
}

/* Comments, processing instructions and blanks between markup. */
static int
vc_xml_misc(struct vc_xml_in *in)
{
	for (;;) {
		vc_xml_skip_space(in);
		if (vc_xml_starts(in, "<!--")) {
			if (vc_xml_skip_past(in, "-->") == -1)
				return vc_xml_fail(in, "unterminated comment");
		} else if (vc_xml_starts(in, "<?")) {
			if (vc_xml_skip_past(in, "?>") == -1)
				return vc_xml_fail(in, "unterminated processing "
				    "instruction");
		} else if (vc_xml_starts(in, "<!")) {
			return vc_xml_fail(in, "DOCTYPE and CDATA are not "
			    "allowed in a VIB descriptor");
		} else
			return 0;
	}
}

static int
vc_xml_text_append(struct vc_xml_in *in, struct vc_xml *x, const char *s,
    const char *e)
{
	char	*t, *nt;
	size_t	 old = x->text ? strlen(x->text) : 0;

	if (s == e)
		return 0;
	if ((t = vc_xml_decode(in, s, e, 0)) == NULL)
		return -1;
	if ((nt = realloc(x->text, old + strlen(t) + 1)) == NULL) {
		free(t);
		return vc_xml_fail(in, "out of memory");
	}
	memcpy(nt + old, t, strlen(t) + 1);
	x->text = nt;
	free(t);
	return 0;
}

static struct vc_xml *vc_xml_element(struct vc_xml_in *, int);

/* Content of x up to and including its end tag. */
static int
vc_xml_content(struct vc_xml_in *in, struct vc_xml *x, int depth)
{
	const char	*s;
	char		*name;

	for (;;) {
		s = in->p;
		while (in->p < in->end && *in->p != '<') {
			if (*in->p == '>' && in->p - s >= 2 &&
			    memcmp(in->p - 2, "]]", 2) == 0)
				return vc_xml_fail(in, "']]>' in character data");
			vc_xml_advance(in, 1);
		}
		if (vc_xml_text_append(in, x, s, in->p) == -1)
			return -1;
		if (in->p >= in->end)
			return vc_xml_fail(in, "<%s> is not closed", x->name);
		if (vc_xml_starts(in, "</")) {
			vc_xml_advance(in, 2);
			if ((name = vc_xml_name(in)) == NULL)
				return vc_xml_fail(in, "bad end tag");
			if (strcmp(name, x->name) != 0) {
				vc_xml_fail(in, "</%s> closes <%s> (opened at "
				    "line %d)", name, x->name, x->line);
				free(name);
				return -1;
			}
			free(name);
			vc_xml_skip_space(in);
			if (in->p >= in->end || *in->p != '>')
				return vc_xml_fail(in, "bad end tag </%s>",
				    x->name);
			vc_xml_advance(in, 1);
			return 0;
		}
		if (vc_xml_starts(in, "<!--") || vc_xml_starts(in, "<?") ||
		    vc_xml_starts(in, "<!")) {
			if (vc_xml_misc(in) == -1)
				return -1;
			continue;
		}
		struct vc_xml *kid = vc_xml_element(in, depth + 1);
		if (kid == NULL)
			return -1;
		if (vc_xml_add_kid(x, kid) == -1) {
			vc_xml_free(kid);
			return vc_xml_fail(in, "out of memory");
		}
	}
}

static struct vc_xml *
vc_xml_element(struct vc_xml_in *in, int depth)
{
	struct vc_xml		*x;
	struct vc_xml_attr	*a, *na;
	const char		*vs;
	char			 q;

	if (depth > VC_XML_DEPTH_MAX) {
		vc_xml_fail(in, "elements nested deeper than %d",
		    VC_XML_DEPTH_MAX);
		return NULL;
	}
	if (in->p >= in->end || *in->p != '<') {
		vc_xml_fail(in, "expected an element");
		return NULL;
	}
	vc_xml_advance(in, 1);
	if ((x = calloc(1, sizeof(*x))) == NULL) {
		vc_xml_fail(in, "out of memory");
		return NULL;
	}
	x->line = in->line;
	if ((x->name = vc_xml_name(in)) == NULL) {
		vc_xml_fail(in, "bad element name");
		goto fail;
	}
	for (;;) {
		const char *before = in->p;

		vc_xml_skip_space(in);
		if (in->p >= in->end) {
			vc_xml_fail(in, "unterminated tag <%s", x->name);
			goto fail;
		}
		if (vc_xml_starts(in, "/>")) {
			vc_xml_advance(in, 2);
			return x;
		}
		if (*in->p == '>') {
			vc_xml_advance(in, 1);
			if (vc_xml_content(in, x, depth) == -1)
				goto fail;
			return x;
		}
		if (in->p == before) {
			vc_xml_fail(in, "expected a blank before an attribute "
			    "in <%s>", x->name);
			goto fail;
		}
		na = realloc(x->attrs, (x->nattrs + 1) * sizeof(*na));
		if (na == NULL) {
			vc_xml_fail(in, "out of memory");
			goto fail;
		}
		x->attrs = na;
		a = &x->attrs[x->nattrs++];
		a->name = a->value = NULL;
		if ((a->name = vc_xml_name(in)) == NULL) {
			vc_xml_fail(in, "bad attribute name in <%s>", x->name);
			goto fail;
		}
		for (size_t i = 0; i + 1 < x->nattrs; i++) {
			if (strcmp(x->attrs[i].name, a->name) == 0) {
				vc_xml_fail(in, "attribute '%s' twice in <%s>",
				    a->name, x->name);
				goto fail;
			}
		}
		vc_xml_skip_space(in);
		if (in->p >= in->end || *in->p != '=') {
			vc_xml_fail(in, "attribute '%s' without '='", a->name);
			goto fail;
		}
		vc_xml_advance(in, 1);
		vc_xml_skip_space(in);
		if (in->p >= in->end || (*in->p != '"' && *in->p != '\'')) {
			vc_xml_fail(in, "attribute '%s' value not quoted",
			    a->name);
			goto fail;
		}
		q = *in->p;
		vc_xml_advance(in, 1);
		vs = in->p;
		while (in->p < in->end && *in->p != q)
			vc_xml_advance(in, 1);
		if (in->p >= in->end) {
			vc_xml_fail(in, "unterminated value of '%s'", a->name);
			goto fail;
		}
		if ((a->value = vc_xml_decode(in, vs, in->p, 1)) == NULL)
			goto fail;
		vc_xml_advance(in, 1);
	}
fail:
	vc_xml_free(x);
	return NULL;
}

/*
 * Well-formed UTF-8 of XML 1.0 characters: no control characters but tab,
 * LF and CR, no stray continuation bytes, overlongs or surrogates.
 */
static int
vc_xml_utf8_ok(const unsigned char *p, size_t len, size_t *bad)
{
	size_t	i = 0, n, k;
	unsigned long cp;

	while (i < len) {
		if (p[i] < 0x20 && p[i] != '\t' && p[i] != '\n' && p[i] != '\r')
			goto fail;	/* not an XML 1.0 character */
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		if (p[i] >= 0xc2 && p[i] <= 0xdf)
			n = 1, cp = p[i] & 0x1f;
		else if (p[i] >= 0xe0 && p[i] <= 0xef)
			n = 2, cp = p[i] & 0x0f;
		else if (p[i] >= 0xf0 && p[i] <= 0xf4)
			n = 3, cp = p[i] & 0x07;
		else
			goto fail;
		if (len - i <= n)
			goto fail;
		for (k = 1; k <= n; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				goto fail;
			cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			goto fail;
		i += n + 1;
	}
	return 1;
fail:
	*bad = i;
	return 0;
}

struct vc_xml *
vc_xml_parse(const char *buf, size_t len, char *err, size_t errlen)
{
	struct vc_xml_in	 in = { buf, buf + len, 1, err, errlen };
	struct vc_xml		*root;

	size_t			 bad;

	if (memchr(buf, '\0', len) != NULL) {
		vc_xml_fail(&in, "NUL byte in the document");
		return NULL;
	}
	if (!vc_xml_utf8_ok((const unsigned char *)buf, len, &bad)) {
		for (size_t i = 0; i < bad; i++)
			if (buf[i] == '\n')
				in.line++;
		vc_xml_fail(&in, "not valid UTF-8 XML text (byte 0x%02x at "
		    "offset %zu)", (unsigned char)buf[bad], bad);
		return NULL;
	}
	if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0)
		in.p += 3;		/* UTF-8 byte order mark */
	if (vc_xml_misc(&in) == -1)
		return NULL;
	if ((root = vc_xml_element(&in, 1)) == NULL)
		return NULL;
	if (vc_xml_misc(&in) == -1) {
		vc_xml_free(root);
		return NULL;
	}
	if (in.p != in.end) {
		vc_xml_fail(&in, "content after the root element </%s>",
		    root->name);
		vc_xml_free(root);
		return NULL;
	}
	return root;
}

void
vc_xml_free(struct vc_xml *x)
{
	if (x == NULL)
		return;
	for (size_t i = 0; i < x->nkids; i++)
		vc_xml_free(x->kids[i]);
	for (size_t i = 0; i < x->nattrs; i++) {
		free(x->attrs[i].name);
		free(x->attrs[i].value);
	}
	free(x->kids);
	free(x->attrs);
	free(x->text);
	free(x->name);
	free(x);
}

struct vc_xml *
vc_xml_child(const struct vc_xml *x, const char *name)
{
	for (size_t i = 0; i < x->nkids; i++)
		if (strcmp(x->kids[i]->name, name) == 0)
			return x->kids[i];
	return NULL;
}

const char *
vc_xml_attr(const struct vc_xml *x, const char *name)
{
	for (size_t i = 0; i < x->nattrs; i++)
		if (strcmp(x->attrs[i].name, name) == 0)
			return x->attrs[i].value;
	return NULL;
}

const char *
vc_xml_text(const struct vc_xml *x)
{
	return x->text != NULL ? x->text : "";
}
