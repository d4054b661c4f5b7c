/* The lifetime of a forwarded request's struct (see forward_internal.h): finished ones are kept
 * for reuse with their url, scopes and token buffers, the token always wiped on the way. */
#include "forward_internal.h"

#include <stdlib.h>
#include <string.h>

/* Finished requests kept for reuse, with their url, scopes and token buffers: a forwarded
 * request then costs no allocation of this module's own. None under AddressSanitizer: a reused
 * struct would hide a use after free from it. */
#define FORWARD_SPARE_REQS 64
static size_t forward_req_spare_keep(void)
{
#if defined(__SANITIZE_ADDRESS__)
	return 0;
#else
	return FORWARD_SPARE_REQS;
#endif
}

void forward_req_release(struct forward_req *fr)
{
	if (fr->token_buf)
		explicit_bzero(fr->token_buf, fr->token_cap); /* never left readable */
	free(fr->token_buf);
	free(fr->url);
	free(fr->scopes);
	free(fr);
}

void forward_req_free(struct forward_req *fr)
{
	struct forward *f = fr->f;
	if (fr->no_spare || f->nspare >= forward_req_spare_keep()) {
		forward_req_release(fr);
		return;
	}
	if (fr->token_buf)
		explicit_bzero(fr->token_buf, fr->token_cap);
	char *url = fr->url, *scopes = fr->scopes, *token_buf = fr->token_buf;
	size_t url_cap = fr->url_cap, scopes_cap = fr->scopes_cap, token_cap = fr->token_cap;
	memset(fr, 0, sizeof(*fr)); /* (token: NULL, no request's) */
	fr->url = url, fr->url_cap = url_cap;
	fr->scopes = scopes, fr->scopes_cap = scopes_cap;
	fr->token_buf = token_buf, fr->token_cap = token_cap;
	fr->next = f->spare;
	f->spare = fr;
	f->nspare++;
}

/* A request struct, spare or new, zeroed but for its kept buffers. */
struct forward_req *forward_req_new(struct forward *f)
{
	struct forward_req *fr = f->spare;
	if (fr) {
		f->spare = fr->next;
		f->nspare--;
		fr->next = NULL;
		return fr;
	}
	return calloc(1, sizeof(*fr));
}

/* *buf holds at least `need` bytes (its size in *cap; what it held is wiped, not copied). */
char *forward_req_buf_fit(char **buf, size_t *cap, size_t need)
{
	if (*buf && *cap >= need)
		return *buf;
	size_t c = need < 64 ? 64 : need;
	char *b = malloc(c);
	if (!b)
		return NULL;
	if (*buf)
		explicit_bzero(*buf, *cap);
	free(*buf);
	*buf = b;
	*cap = c;
	return b;
}

/* Copies n bytes and a NUL into *buf, grown to fit. */
char *forward_req_buf_set(char **buf, size_t *cap, const char *src, size_t n)
{
	if (!forward_req_buf_fit(buf, cap, n + 1))
		return NULL;
	memcpy(*buf, src, n);
	(*buf)[n] = '\0';
	return *buf;
}
