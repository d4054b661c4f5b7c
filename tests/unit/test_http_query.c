/* Tests for query-string parameters of tether's own routes: decoding, presence without a value,
 * absence, and names that are prefixes of others. */
#include <stdlib.h>
#include <string.h>

#include "http_query.h"
#include "tap.h"

static void check(const char *query, const char *name, const char *want, const char *what)
{
	char *got = http_query_param(query, name);
	if (!want)
		ok(got == NULL, "%s", what);
	else
		ok(got && strcmp(got, want) == 0, "%s (got %s)", what, got ? got : "NULL");
	free(got);
}

int main(void)
{
	check("a=1&b=2", "b", "2", "second parameter");
	check("scopes=x%20y+z&count=3", "scopes", "x y z", "%20 and + decode to spaces");
	check("all&table=t", "all", "", "present without a value");
	check("all=&table=t", "all", "", "present with an empty value");
	check("table=t", "tab", NULL, "a prefix of a name is not the name");
	check("table=t", "missing", NULL, "absent");
	check("", "a", NULL, "empty query");
	check(NULL, "a", NULL, "no query");
	check("a=%zz%4", "a", "%zz%4", "bad escapes are kept as they are");
	check("a=%41%62", "a", "Ab", "hex escapes, both cases");
	return tap_done();
}
