/* The function and keyword lists behind the cache's statement analysis: which calls are known
 * read-only (so a statement calling them writes nothing and may be cached), which are read-only
 * but volatile (never cached), and which words before '(' are syntax rather than calls. */
#include "cache_sql_internal.h"

#include <string.h>

static bool cache_sql_funcs_in(const char *const *list, const char *name)
{
	for (size_t i = 0; list[i]; i++)
		if (strcmp(list[i], name) == 0)
			return true;
	return false;
}

/* Built-ins that write nothing and whose result depends only on their arguments, the session
 * settings in the key, the user, and (for now() and friends) the clock, which the TTL bounds. */
static const char *const cache_sql_funcs_safe[] = {
	/* aggregates and windows */
	"count", "sum", "avg", "min", "max", "array_agg", "string_agg", "json_agg", "jsonb_agg",
	"json_object_agg", "jsonb_object_agg", "bool_and", "bool_or", "every", "bit_and", "bit_or", "bit_xor",
	"stddev", "stddev_pop", "stddev_samp", "variance", "var_pop", "var_samp", "corr", "covar_pop",
	"covar_samp", "regr_slope", "regr_intercept", "regr_count", "regr_r2", "percentile_cont",
	"percentile_disc", "mode", "rank", "dense_rank", "percent_rank", "cume_dist", "row_number", "ntile",
	"lag", "lead", "first_value", "last_value", "nth_value", "grouping", "any_value", "xmlagg",
	/* conditional and comparison */
	"coalesce", "nullif", "greatest", "least", "num_nulls", "num_nonnulls",
	/* strings */
	"lower", "upper", "initcap", "length", "char_length", "character_length", "octet_length", "bit_length",
	"substring", "substr", "position", "strpos", "overlay", "trim", "btrim", "ltrim", "rtrim", "lpad",
	"rpad", "left", "right", "repeat", "replace", "reverse", "split_part", "concat", "concat_ws",
	"format", "quote_ident", "quote_literal", "quote_nullable", "starts_with", "translate", "ascii", "chr",
	"md5", "sha224", "sha256", "sha384", "sha512", "encode", "decode", "to_hex", "regexp_replace",
	"regexp_match", "regexp_matches", "regexp_split_to_array", "regexp_split_to_table", "regexp_like",
	"regexp_count", "regexp_instr", "regexp_substr", "string_to_array", "string_to_table", "normalize",
	"unistr", "to_ascii", "convert", "convert_from", "convert_to", "get_byte", "set_byte", "get_bit",
	"set_bit", "unaccent", "similarity", "word_similarity",
	/* numbers */
	"abs", "ceil", "ceiling", "floor", "round", "trunc", "sign", "mod", "div", "power", "pow", "sqrt",
	"cbrt", "exp", "ln", "log", "log10", "pi", "degrees", "radians", "sin", "cos", "tan", "asin", "acos",
	"atan", "atan2", "width_bucket", "scale", "min_scale", "trim_scale", "gcd", "lcm", "factorial",
	"to_char", "to_number", "numeric", "int4", "int8", "float8", "text",
	/* dates and times */
	"now", "current_timestamp", "current_date", "current_time", "localtime", "localtimestamp",
	"statement_timestamp", "transaction_timestamp", "date_trunc", "date_part", "date_bin", "extract", "age",
	"make_date", "make_time", "make_timestamp", "make_timestamptz", "make_interval", "to_date",
	"to_timestamp", "justify_days", "justify_hours", "justify_interval", "isfinite", "timezone",
	"date_add", "date_subtract", "overlaps",
	/* arrays, ranges, sets */
	"array_length", "array_lower", "array_upper", "array_ndims", "array_dims", "array_position",
	"array_positions", "array_remove", "array_replace", "array_append", "array_prepend", "array_cat",
	"array_to_string", "array_fill", "cardinality", "unnest", "generate_series", "generate_subscripts",
	"trim_array", "array_sample", "array_shuffle", "lower_inc", "upper_inc", "isempty", "range_merge",
	"int4range", "int8range", "numrange", "tsrange", "tstzrange", "daterange", "multirange",
	/* json */
	"to_json", "to_jsonb", "row_to_json", "array_to_json", "json_build_object", "jsonb_build_object",
	"json_build_array", "jsonb_build_array", "json_object", "jsonb_object", "json_array_elements",
	"jsonb_array_elements", "json_array_elements_text", "jsonb_array_elements_text", "json_each",
	"jsonb_each", "json_each_text", "jsonb_each_text", "json_extract_path", "jsonb_extract_path",
	"json_extract_path_text", "jsonb_extract_path_text", "json_object_keys", "jsonb_object_keys",
	"json_populate_record", "jsonb_populate_record", "json_populate_recordset",
	"jsonb_populate_recordset", "json_to_record", "jsonb_to_record", "json_to_recordset",
	"jsonb_to_recordset", "json_array_length", "jsonb_array_length", "json_typeof", "jsonb_typeof",
	"json_strip_nulls", "jsonb_strip_nulls", "jsonb_set", "jsonb_set_lax", "jsonb_insert", "jsonb_pretty",
	"jsonb_path_exists", "jsonb_path_match", "jsonb_path_query", "jsonb_path_query_array",
	"jsonb_path_query_first", "json_scalar", "json_serialize", "json_array", "json_query", "json_value",
	"json_exists", "json_table", "json_objectagg", "json_arrayagg", "jsonb_concat",
	/* xml */
	"xmlelement", "xmlforest", "xmlconcat", "xmlparse", "xmlserialize", "xmlpi", "xmlroot",
	"xmlattributes", "xpath", "xpath_exists", "xmlexists", "xmltable",
	/* full text */
	"to_tsvector", "to_tsquery", "plainto_tsquery", "phraseto_tsquery", "websearch_to_tsquery",
	"ts_rank", "ts_rank_cd", "ts_headline", "setweight", "strip", "numnode", "querytree",
	"ts_rewrite", "tsvector_to_array", "array_to_tsvector",
	/* network, geometry, uuid, misc */
	"host", "hostmask", "masklen", "netmask", "network", "family", "broadcast", "inet_merge", "abbrev",
	"set_masklen", "point", "box", "circle", "area", "center", "diameter", "radius", "distance",
	"st_distance", "st_dwithin", "st_contains", "st_intersects", "st_makepoint", "st_setsrid",
	"st_asgeojson", "st_astext", "st_x", "st_y", "uuid_extract_timestamp", "uuid_extract_version",
	/* type and catalog helpers that read no user tables */
	"cast", "treat", "pg_typeof", "format_type", "version", "current_schema", "current_schemas",
	"current_database", "current_catalog", "current_user", "session_user", "current_role",
	"has_table_privilege", "has_schema_privilege", "has_column_privilege", "pg_column_size",
	"pg_get_viewdef", "pg_get_indexdef", "to_regclass", "to_regtype", "to_regproc", "col_description",
	"obj_description", "pg_table_is_visible", "pg_get_serial_sequence", "pg_size_pretty",
	"pg_relation_size", "pg_total_relation_size", "pg_table_size", "pg_indexes_size",
	"pg_database_size", "row", "exists", "interval", NULL,
};

/* Read-only but volatile or bound to one server connection: never cached (and nextval/setval,
 * which change only sequences, invalidate nothing: sequences are not cached tables). */
static const char *const cache_sql_funcs_volatile[] = {
	"random", "random_normal", "setseed", "nextval", "currval", "lastval", "setval", "gen_random_uuid",
	"uuid_generate_v1", "uuid_generate_v1mc", "uuid_generate_v4", "uuidv4", "uuidv7", "clock_timestamp",
	"timeofday", "pg_sleep", "pg_sleep_for", "pg_sleep_until", "txid_current", "txid_current_if_assigned",
	"txid_current_snapshot", "pg_current_xact_id", "pg_current_xact_id_if_assigned", "pg_current_snapshot",
	"pg_backend_pid", "pg_blocking_pids", "inet_client_addr", "inet_client_port", "inet_server_addr",
	"inet_server_port", "set_config", "current_setting", "pg_notify", "pg_cancel_backend",
	"pg_terminate_backend", "pg_is_in_recovery", "pg_postmaster_start_time", "pg_conf_load_time",
	"pg_current_wal_lsn", "pg_last_wal_replay_lsn", "pg_listening_channels", "pg_my_temp_schema",
	"pg_trigger_depth", "pg_stat_get_activity", "pg_stat_reset", NULL,
};

/* Words that may stand before '(' without being a function call. */
static const char *const cache_sql_funcs_syntax[] = {
	"all", "and", "any", "array", "as", "asc", "at", "between", "bernoulli", "by", "case", "char",
	"character", "check", "collate", "conflict", "constraint", "cube", "dec", "decimal", "default",
	"delete", "desc", "distinct", "do", "double", "else", "escape", "except", "exclude", "exists",
	"fetch", "filter", "first", "float", "for", "foreign", "from", "group", "groups", "having", "if",
	"ilike", "in", "include", "inherits", "insert", "intersect", "interval", "into", "is", "join", "key",
	"last", "lateral", "like", "limit", "materialized", "merge", "national", "nchar", "not", "nothing",
	"nulls", "numeric", "offset", "on", "only", "or", "order", "over", "partition", "precision", "primary",
	"range", "recursive", "references", "repeatable", "returning", "rollup", "row", "rows", "select",
	"set", "sets", "similar", "some", "system", "table", "tablesample", "then", "time", "timestamp",
	"timestamptz", "timetz", "to", "union", "unique", "update", "using", "values", "varbit", "varchar",
	"varying", "when", "where", "window", "with", "within", "zone", "bit", "return", "returns", "language",
	"begin", "end", "elsif", "loop", "while", "perform", "placing", "both", "leading", "trailing", "ties",
	"ordinality", "preceding", "following", "unbounded", "current", "without", "not", "null", "true", "false",
	"isnull", "notnull", "overlaps", NULL,
};

/* PostgreSQL's own operators (of its built-in types and of contrib's common ones): their
 * functions write nothing. Any other operator may be a user's, whose function may. */
static const char *const cache_sql_ops_builtin[] = {
	"+", "-", "*", "/", "%", "^", "=", "<", ">", "<=", ">=", "<>", "!=", "||", "~", "~*", "!~", "!~*", "~~",
	"~~*", "!~~", "!~~*", "@>", "<@", "&&", "->", "->>", "#>", "#>>", "?", "?|", "?&", "@?", "@@", "@@@",
	"#-", "|/", "||/", "@", "&", "|", "#", "<<", ">>", "<->", "<<=", ">>=", "-|-", "&<", "&>", "<<|", "|>>",
	"&<|", "|&>", "?#", "?-", "?-|", "?||", "~=", "<#>", "<=>", "^@", ":", "=>", "!", "!!", "##", "<^", ">^",
	"*=", "*<>", "*<", "*>", "*<=", "*>=", "<%", "%>", "<<%", "%>>", "<<->", "<->>", "%%", NULL,
};

bool cache_sql_operator_builtin(const char *op)
{
	if (cache_sql_funcs_in(cache_sql_ops_builtin, op))
		return true;
	/* PostgreSQL ends a multi-character operator before a trailing + or - unless it holds one
	 * of ~ ! @ # % ^ & | ` ?: `x=-1` is `=` then unary `-` */
	size_t n = strlen(op);
	if (n > 1 && (op[n - 1] == '+' || op[n - 1] == '-') && !strpbrk(op, "~!@#%^&|`?")) {
		char head[64];
		if (n - 1 >= sizeof(head))
			return false;
		memcpy(head, op, n - 1);
		head[n - 1] = 0;
		return cache_sql_operator_builtin(head);
	}
	return false;
}

bool cache_sql_function_safe(const char *name)
{
	return cache_sql_funcs_in(cache_sql_funcs_safe, name);
}

bool cache_sql_function_volatile(const char *name)
{
	if (strncmp(name, "pg_advisory_", 12) == 0 || strncmp(name, "pg_try_advisory_", 16) == 0)
		return true;
	return cache_sql_funcs_in(cache_sql_funcs_volatile, name);
}

bool cache_sql_funcs_syntax_word(const char *name)
{
	return cache_sql_funcs_in(cache_sql_funcs_syntax, name);
}
