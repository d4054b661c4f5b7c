/* The fast head scanner (http_scan.h): one pass over a complete HTTP/1.x head
 * in the plain shape almost every message has, instead of libhttp-parser's
 * byte-at-a-time state machine (a quarter of the forwarding path's
 * instructions). It accepts a strict subset of what libhttp-parser accepts and
 * gives up on everything else, so libhttp-parser still decides every unusual
 * case; tests/unit/test_http_scan.c checks the two agree on what the scanner
 * takes. */
#include "http_scan.h"

#include <string.h>
#include <strings.h>

#include <http_parser.h>

enum { SC_TOKEN = 1, SC_VALUE = 2, SC_URL = 4 };

/* Character classes (1 token, 2 value, 4 target): RFC 9110 tchar; a field
 * value's visible characters, SP and HTAB; a request target's visible
 * characters except '#' (libhttp-parser reads a fragment apart). Bytes from
 * 0x80 are in none: such heads go to libhttp-parser. */
static const uint8_t scan_class[256] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	2, 7, 6, 3, 7, 7, 7, 7, 6, 6, 7, 7, 6, 7, 7, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 6, 6, 6, 6, 6,
	6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 6, 6, 7, 7,
	7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 7, 6, 7, 0,
};

size_t http_scan_token_len(const char *s)
{
	const char *p = s;
	while (scan_class[(unsigned char)*p] & SC_TOKEN)
		p++;
	return (size_t)(p - s);
}

/* Word-at-a-time tests (exact for any byte of the word): a byte below n (n <=
 * 128), above n (n <= 127), equal to c. Eight bytes of a value or target cost
 * about one test, not eight. */
#define SC_ONES 0x0101010101010101ULL
#define SC_HIGH 0x8080808080808080ULL
#define SC_LESS(x, n) (((x)-SC_ONES * (n)) & ~(x)&SC_HIGH)
#define SC_MORE(x, n) ((((x) + SC_ONES * (127 - (n))) | (x)) & SC_HIGH)
#define SC_HAS(x, c) SC_LESS((x) ^ (SC_ONES * (c)), 1)

/* Skips the bytes of class cls from p: whole words of plain visible characters first (no '#'
 * for a target), then the word's first odd byte is found from the test's lowest flag (exact:
 * borrows and carries only run upwards) and taken if it is of the class (HTAB in a value). */
static inline const char *scan_skip(const char *p, const char *end, uint8_t cls)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	while (end - p >= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		uint64_t odd = cls == SC_URL ? SC_LESS(w, 0x21) | SC_MORE(w, 0x7e) | SC_HAS(w, '#')
					     : SC_LESS(w, 0x20) | SC_MORE(w, 0x7e);
		if (!odd) {
			p += 8;
			continue;
		}
		p += __builtin_ctzll(odd) >> 3;
		if (!(scan_class[(unsigned char)*p] & cls))
			return p;
		p++;
	}
#endif
	while (p < end && (scan_class[(unsigned char)*p] & cls))
		p++;
	return p;
}

/* lit: lower case; its initial rules out most names before strncasecmp. */
static bool scan_is(const char *s, size_t n, const char *lit, size_t litlen)
{
	return n == litlen && (s[0] | 0x20) == lit[0] && strncasecmp(s, lit, n) == 0;
}

/* The header lines from p to the empty line. Fills out's headers, framing and
 * keep-alive flags; false on anything the scanner does not take. */
static bool scan_headers(const char *buf, const char *p, const char *end, struct http_scan *out)
{
	bool conn_close = false, conn_keep = false;
	out->nheaders = 0;
	out->content_length = -1;
	for (;;) {
		if (end - p < 2)
			return false;
		if (p[0] == '\r') {
			if (p[1] != '\n')
				return false;
			p += 2;
			break;
		}
		const char *name = p;
		while (p < end && (scan_class[(unsigned char)*p] & SC_TOKEN))
			p++;
		if (p == name || p == end || *p != ':')
			return false;
		size_t nlen = (size_t)(p - name);
		p++;
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		const char *value = p;
		p = scan_skip(p, end, SC_VALUE);
		if (end - p < 2 || p[0] != '\r' || p[1] != '\n' || p == value || p[-1] == ' ' || p[-1] == '\t')
			return false; /* incomplete, a bare LF, odd bytes, an empty value or
					 trailing space */
		size_t vlen = (size_t)(p - value);
		p += 2;
		if (out->nheaders == HTTP_SCAN_MAX_HEADERS)
			return false;
		switch (nlen) {
		case 7:
			if (scan_is(name, nlen, "upgrade", 7))
				return false;
			break;
		case 10:
			if (scan_is(name, nlen, "connection", 10)) {
				if (scan_is(value, vlen, "close", 5))
					conn_close = true;
				else if (scan_is(value, vlen, "keep-alive", 10))
					conn_keep = true;
				else
					return false; /* lists, upgrade: libhttp-parser's rules */
			}
			break;
		case 14:
			if (scan_is(name, nlen, "content-length", 14)) {
				if (out->content_length >= 0 || vlen > 18)
					return false;
				int64_t v = 0;
				for (size_t i = 0; i < vlen; i++) {
					if (value[i] < '0' || value[i] > '9')
						return false;
					v = v * 10 + (value[i] - '0');
				}
				out->content_length = v;
			}
			break;
		case 16:
			if (scan_is(name, nlen, "proxy-connection", 16))
				return false;
			break;
		case 17:
			if (scan_is(name, nlen, "transfer-encoding", 17))
				return false;
			break;
		}
		struct http_scan_header *h = &out->headers[out->nheaders++];
		h->name.at = (uint32_t)(name - buf);
		h->name.len = (uint32_t)nlen;
		h->value.at = (uint32_t)(value - buf);
		h->value.len = (uint32_t)vlen;
	}
	out->head_len = (size_t)(p - buf);
	out->keep_alive = out->http_minor >= 1 ? !conn_close : conn_keep && !conn_close;
	return true;
}

/* "HTTP/1.0" or "HTTP/1.1" at p: the minor version, or -1. */
static int scan_version(const char *p, const char *end)
{
	if (end - p < 8 || memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1'))
		return -1;
	return p[7] - '0';
}

static const struct {
	const char *name;
	size_t len;
	int method;
} scan_methods[] = {
	{"GET", 3, HTTP_GET},	  {"PUT", 3, HTTP_PUT},	      {"POST", 4, HTTP_POST},	    {"HEAD", 4, HTTP_HEAD},
	{"PATCH", 5, HTTP_PATCH}, {"DELETE", 6, HTTP_DELETE}, {"OPTIONS", 7, HTTP_OPTIONS},
};

bool http_scan_request(const char *buf, size_t len, struct http_scan *out)
{
	if (len > UINT32_MAX)
		return false;
	const char *p = buf, *end = buf + len;
	const char *sp = memchr(p, ' ', len < 8 ? len : 8);
	if (!sp)
		return false;
	size_t mlen = (size_t)(sp - p);
	out->method = -1;
	for (size_t i = 0; i < sizeof(scan_methods) / sizeof(scan_methods[0]); i++)
		if (scan_methods[i].len == mlen && memcmp(scan_methods[i].name, p, mlen) == 0) {
			out->method = scan_methods[i].method;
			break;
		}
	if (out->method < 0)
		return false;
	p = sp + 1;
	const char *target = p;
	if (p == end || *p != '/')
		return false; /* "*", absolute forms: libhttp-parser */
	p = scan_skip(p, end, SC_URL);
	if (p == end || *p != ' ')
		return false;
	out->target.at = (uint32_t)(target - buf);
	out->target.len = (uint32_t)(p - target);
	p++;
	int minor = scan_version(p, end);
	if (minor < 0 || end - p < 10 || p[8] != '\r' || p[9] != '\n')
		return false;
	out->http_minor = (unsigned)minor;
	out->status = 0;
	return scan_headers(buf, p + 10, end, out);
}

bool http_scan_response(const char *buf, size_t len, struct http_scan *out)
{
	if (len > UINT32_MAX)
		return false;
	const char *p = buf, *end = buf + len;
	int minor = scan_version(p, end);
	if (minor < 0 || end - p < 13 || p[8] != ' ')
		return false;
	p += 9;
	if (p[0] < '1' || p[0] > '9' || p[1] < '0' || p[1] > '9' || p[2] < '0' || p[2] > '9' || p[3] != ' ')
		return false;
	out->status = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
	p += 4;
	while (p < end && (scan_class[(unsigned char)*p] & SC_VALUE))
		p++;
	if (end - p < 2 || p[0] != '\r' || p[1] != '\n')
		return false;
	out->http_minor = (unsigned)minor;
	out->method = -1;
	out->target.at = out->target.len = 0;
	if (!scan_headers(buf, p + 2, end, out))
		return false;
	bool bodiless = out->status / 100 == 1 || out->status == 204 || out->status == 304;
	if (out->content_length < 0 && !bodiless)
		out->keep_alive = false; /* the body ends where the connection does */
	return true;
}
