/* Query strings of requests to tether's own routes (admin paths): one parameter at a time. */
#ifndef TETHER_HTTP_QUERY_H
#define TETHER_HTTP_QUERY_H

/* The decoded value ('+' and %XX) of parameter `name` in `query` (without the '?'), malloc'd:
 * "" when present without a value, NULL when absent or out of memory. */
char *http_query_param(const char *query, const char *name);

#endif
