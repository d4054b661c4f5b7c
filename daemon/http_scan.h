/* A fast scanner for the common case of an HTTP/1.x message head (http_scan.c),
 * used by the server and the own upstream client before libhttp-parser: a whole
 * head in one buffer, in the plain shape clients and servers send, is read in
 * one pass; anything else (a head split across reads, chunked or unframed
 * bodies, obs-fold, unusual bytes, Upgrade...) is left to libhttp-parser, which
 * stays the judge of every message the scanner does not take. */
#ifndef TETHER_HTTP_SCAN_H
#define TETHER_HTTP_SCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_SCAN_MAX_HEADERS 48

struct http_scan_span {
	uint32_t at, len; /* offsets into the scanned buffer */
};

struct http_scan_header {
	struct http_scan_span name, value;
};

struct http_scan {
	int method;		      /* requests: enum http_method */
	struct http_scan_span target; /* requests: the request target */
	int status;		      /* responses: 100..999 */
	unsigned http_minor;	      /* HTTP/1.<minor>, 0 or 1 */
	int64_t content_length;	      /* -1: no Content-Length header */
	bool keep_alive;	      /* what http_should_keep_alive says for the message */
	size_t head_len;	      /* bytes up to and including the empty line */
	size_t nheaders;
	struct http_scan_header headers[HTTP_SCAN_MAX_HEADERS];
};

/* true: buf starts with a complete request (or response) head that
 * libhttp-parser would parse to exactly the method, target, status, headers
 * (names as sent, values without the leading whitespace), framing and
 * keep-alive in *out; no Transfer-Encoding, Upgrade or Proxy-Connection, at
 * most one Content-Length, every value non-empty. false: let libhttp-parser
 * read it (incomplete, unusual or malformed); *out is then undefined. */
/* The length of the run of RFC 9110 token characters (tchar) at the start of s. */
size_t http_scan_token_len(const char *s);

bool http_scan_request(const char *buf, size_t len, struct http_scan *out);
bool http_scan_response(const char *buf, size_t len, struct http_scan *out);

#endif
