/*  test_rest.c - the REST API's parsers (gateway/include/qkv_rest.h),
    without a server: bodies, query strings, tokens files and the
    authorization decision.

    Table-driven: each row is a body (or a query string) with the answer
    it must get: parsed fields for good rows; the HTTP status, the status
    word and a word the message must contain (the field at fault) for bad
    ones. Hostile rows: huge numbers, deep nesting, invalid UTF-8, raw and
    escaped NUL bytes, truncated bodies and %-escapes. Seeded random bytes
    and mutations of good input check that any bytes get an answer (the
    suite runs under ASan and UBSan in CI).
*/
#include "kit.h"
#include "qkv_rest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Small limits so rows stay short: keys up to 8 bytes, values up to 16. */
static const qkv_rest_limits_t s_limits = {8, 16};

typedef struct {
    const char *bytes;
    size_t len;
} bytes_t;

/* A literal with its length, NUL bytes included. */
#define B(s)                                                                   \
    { s, sizeof s - 1 }

/*  ---------------------------------------------------------------------
    Helpers */

/* Prints the bytes of a row in a readable form for failure messages. */
static void show(const char *s, size_t len, char *out, size_t size) {
    size_t used = 0;
    for (size_t i = 0; i < len && used + 5 < size && i < 120; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f)
            out[used++] = (char)c;
        else
            used += (size_t)snprintf(out + used, size - used, "\\x%02x", c);
    }
    out[used] = '\0';
}

/* Checks an error against the row: http, status word, a word in the
   message. what describes the row for failure messages. */
static void expect_error(const char *what, int rc, const qkv_rest_error_t *err,
                         int http, const char *status, const char *names) {
    bool ok = rc == -1 && err->http == http && err->status != NULL &&
              strcmp(err->status, status) == 0 &&
              strstr(err->message, names) != NULL;
    if (!ok)
        fprintf(stderr,
                "\n  [%s] gave %d, %d %s \"%s\" (wanted %d %s naming %s)", what,
                rc, rc ? err->http : 0, rc && err->status ? err->status : "-",
                rc ? err->message : "", http, status, names);
    CU_ASSERT_EQUAL(rc, -1);
    CU_ASSERT_EQUAL(err->http, http);
    CU_ASSERT(err->status != NULL && strcmp(err->status, status) == 0);
    CU_ASSERT(strstr(err->message, names) != NULL);
}

static const char *s_op_name(qkv_op_t op) {
    return op == QKV_OP_PUT ? "PUT" : op == QKV_OP_DELETE ? "DELETE" : "RESET";
}

/*  ---------------------------------------------------------------------
    Write bodies: good */

typedef struct {
    qkv_op_t op;
    bytes_t body;
    bytes_t key; /* expected; {NULL, 0} for a reset */
    bytes_t value;
    uint64_t client_id, client_seq;
} good_write_t;

#define PUT QKV_OP_PUT
#define DEL QKV_OP_DELETE
#define RESET QKV_OP_RESET
#define NONE                                                                   \
    { NULL, 0 }

static const good_write_t s_good_writes[] = {
    {PUT, B("{\"key\":\"k\",\"value\":\"v\"}"), B("k"), B("v"), 0, 0},
    {PUT, B(" { \"value\" : \"v\" , \"key\" : \"k\" } \n"), B("k"), B("v"), 0,
     0},
    {PUT, B("{\"key\":\"k\",\"value\":\"\"}"), B("k"), B(""), 0, 0},
    /* at the limits: 8-byte key, 16-byte value */
    {PUT, B("{\"key\":\"12345678\",\"value\":\"0123456789abcdef\"}"),
     B("12345678"), B("0123456789abcdef"), 0, 0},
    /* limits count bytes: 4 x 2-byte characters is 8 bytes */
    {PUT, B("{\"key\":\"\xd0\xb6\xd0\xb6\xd0\xb6\xd0\xb6\",\"value\":\"v\"}"),
     B("\xd0\xb6\xd0\xb6\xd0\xb6\xd0\xb6"), B("v"), 0, 0},
    /* escapes, \u0000 in keys and values */
    {PUT, B("{\"key\":\"a\\u0000b\",\"value\":\"\\u0000\"}"), B("a\0b"),
     B("\0"), 0, 0},
    {PUT, B("{\"key\":\"\\\"\\\\\\/\\n\",\"value\":\"\\ud83d\\ude00\"}"),
     B("\"\\/\n"), B("\xf0\x9f\x98\x80"), 0, 0},
    /* unknown members are ignored, whatever their type */
    {PUT, B("{\"key\":\"k\",\"value\":\"v\",\"ttl\":[1,{\"a\":null}]}"), B("k"),
     B("v"), 0, 0},
    /* tags */
    {PUT, B("{\"key\":\"k\",\"value\":\"v\",\"client_id\":1,\"client_seq\":1}"),
     B("k"), B("v"), 1, 1},
    {PUT,
     B("{\"client_seq\":9007199254740991,\"client_id\":9007199254740991,"
       "\"key\":\"k\",\"value\":\"v\"}"),
     B("k"), B("v"), 9007199254740991ULL, 9007199254740991ULL},
    {PUT,
     B("{\"key\":\"k\",\"value\":\"v\",\"client_id\":42,\"client_seq\":7}"),
     B("k"), B("v"), 42, 7},
    /* a delete: key only; a value is ignored */
    {DEL, B("{\"key\":\"k\"}"), B("k"), NONE, 0, 0},
    {DEL, B("{\"key\":\"k\",\"value\":5}"), B("k"), NONE, 0, 0},
    {DEL, B("{\"key\":\"k\",\"client_id\":3,\"client_seq\":4}"), B("k"), NONE,
     3, 4},
    /* a reset: no body, an empty object, tags, anything else ignored */
    {RESET, B(""), B(""), NONE, 0, 0},
    {RESET, B("{}"), B(""), NONE, 0, 0},
    {RESET, B(" {} "), B(""), NONE, 0, 0},
    {RESET, B("{\"client_id\":5,\"client_seq\":6}"), B(""), NONE, 5, 6},
    {RESET, B("{\"key\":7,\"value\":[]}"), B(""), NONE, 0, 0},
};

static bool bytes_eq(const char *s, size_t len, const bytes_t *want) {
    return len == want->len && (len == 0 || memcmp(s, want->bytes, len) == 0);
}

static void test_good_writes(void) {
    size_t n = sizeof s_good_writes / sizeof s_good_writes[0];
    for (size_t i = 0; i < n; i++) {
        const good_write_t *row = &s_good_writes[i];
        qkv_rest_write_t out;
        qkv_rest_error_t err;
        memset(&err, 0, sizeof err);
        int rc = qkv_rest_parse_write(row->body.bytes, row->body.len, row->op,
                                      &s_limits, &out, &err);
        const qkv_write_t *w = &out.write;
        bool ok =
            rc == 0 && w->op == row->op &&
            bytes_eq(w->key, w->key_len, &row->key) &&
            w->client_id == row->client_id &&
            w->client_seq == row->client_seq &&
            (row->value.bytes ? bytes_eq(w->value, w->value_len, &row->value)
                              : w->value == NULL && w->value_len == 0) &&
            w->key != NULL;
        if (!ok) {
            char what[600];
            show(row->body.bytes, row->body.len, what, sizeof what);
            fprintf(stderr, "\n  good row %zu %s [%s]: rc %d, %s", i,
                    s_op_name(row->op), what, rc, rc ? err.message : "");
        }
        CU_ASSERT(ok);
        qkv_rest_write_free(&out);
    }
}

/* A NULL body with length 0: a reset, else "empty body". */
static void test_null_body(void) {
    qkv_rest_write_t out;
    qkv_rest_error_t err;
    CU_ASSERT_EQUAL(
        qkv_rest_parse_write(NULL, 0, QKV_OP_RESET, &s_limits, &out, &err), 0);
    CU_ASSERT(out.root == NULL);
    CU_ASSERT(out.write.key != NULL && out.write.key_len == 0);
    qkv_rest_write_free(&out);
    int rc = qkv_rest_parse_write(NULL, 0, QKV_OP_PUT, &s_limits, &out, &err);
    expect_error("NULL PUT", rc, &err, 400, "bad_request", "empty body");
    rc = qkv_rest_parse_write(NULL, 0, QKV_OP_DELETE, &s_limits, &out, &err);
    expect_error("NULL DELETE", rc, &err, 400, "bad_request", "key");
}

/* Free is safe twice, on NULL, and after a failed parse. */
static void test_write_free(void) {
    qkv_rest_write_t out;
    qkv_rest_error_t err;
    const char *body = "{\"key\":\"k\",\"value\":\"v\"}";
    CU_ASSERT_EQUAL(qkv_rest_parse_write(body, strlen(body), QKV_OP_PUT,
                                         &s_limits, &out, &err),
                    0);
    CU_ASSERT(out.root != NULL);
    qkv_rest_write_free(&out);
    CU_ASSERT(out.root == NULL && out.write.key == NULL);
    qkv_rest_write_free(&out);
    qkv_rest_write_free(NULL);
    body = "{\"key\":\"\",\"value\":\"v\"}";
    CU_ASSERT_EQUAL(qkv_rest_parse_write(body, strlen(body), QKV_OP_PUT,
                                         &s_limits, &out, &err),
                    -1);
    CU_ASSERT(out.root == NULL);
    qkv_rest_write_free(&out);
}

/* Only the bytes within len count: a valid body followed by junk. */
static void test_write_reads_len_only(void) {
    const char text[] = "{\"key\":\"k\",\"value\":\"v\"}GARBAGE";
    qkv_rest_write_t out;
    qkv_rest_error_t err;
    CU_ASSERT_EQUAL(qkv_rest_parse_write(text, sizeof text - 1 - 7, QKV_OP_PUT,
                                         &s_limits, &out, &err),
                    0);
    qkv_rest_write_free(&out);
    int rc = qkv_rest_parse_write(text, sizeof text - 1, QKV_OP_PUT, &s_limits,
                                  &out, &err);
    expect_error("trailing", rc, &err, 400, "bad_request", "JSON");
}

/*  ---------------------------------------------------------------------
    Write bodies: bad */

typedef struct {
    qkv_op_t op;
    bytes_t body;
    int http;
    const char *status;
    const char *names; /* the message contains this */
} bad_write_t;

#define BAD(op, body, names)                                                   \
    { op, B(body), 400, "bad_request", names }
#define LARGE(op, body, names)                                                 \
    { op, B(body), 413, "too_large", names }

static const bad_write_t s_bad_writes[] = {
    /* not a JSON object */
    BAD(PUT, "", "empty body"),
    BAD(DEL, "", "empty body"),
    BAD(PUT, "{not json", "JSON"),
    BAD(PUT, "[\"key\",\"value\"]", "JSON object"),
    BAD(PUT, "\"key\"", "JSON"),
    BAD(PUT, "null", "JSON"),
    BAD(PUT, "   ", "JSON"),
    BAD(RESET, "   ", "JSON"),
    BAD(RESET, "[]", "JSON object"),
    BAD(RESET, "5", "JSON"),
    BAD(RESET, "{", "JSON"),
    BAD(PUT, "{\"key\":\"k\",\"value\":\"v\"} trailing", "JSON"),
    BAD(PUT, "{\"key\":\"k\",\"value\":\"v\"}{}", "JSON"),
    /* truncated */
    BAD(PUT, "{\"key\":\"k\",\"value\":\"v\"", "JSON"),
    BAD(PUT, "{\"key\":\"k\",\"value\":\"v", "JSON"),
    BAD(PUT, "{\"key\":\"\\u00", "JSON"),
    BAD(PUT, "{\"key\":\"\\", "JSON"),
    BAD(PUT, "{\"key\"", "JSON"),
    /* missing or mistyped members: the message names the member */
    BAD(PUT, "{}", "\"key\""),
    BAD(PUT, "{\"value\":\"x\"}", "\"key\""),
    BAD(PUT, "{\"key\":\"k\"}", "\"value\""),
    BAD(PUT, "{\"key\":7,\"value\":\"x\"}", "\"key\""),
    BAD(PUT, "{\"key\":null,\"value\":\"x\"}", "\"key\""),
    BAD(PUT, "{\"key\":[\"k\"],\"value\":\"x\"}", "\"key\""),
    BAD(PUT, "{\"key\":\"k\",\"value\":5}", "\"value\""),
    BAD(PUT, "{\"key\":\"k\",\"value\":null}", "\"value\""),
    BAD(PUT, "{\"key\":\"k\",\"value\":{}}", "\"value\""),
    BAD(PUT, "{\"key\":\"k\",\"value\":true}", "\"value\""),
    BAD(PUT, "{\"Key\":\"k\",\"value\":\"v\"}", "\"key\""),
    BAD(DEL, "{\"value\":\"x\"}", "\"key\""),
    BAD(DEL, "{\"key\":1}", "\"key\""),
    /* empty keys */
    BAD(PUT, "{\"key\":\"\",\"value\":\"x\"}", "key must not be empty"),
    BAD(DEL, "{\"key\":\"\"}", "key must not be empty"),
    /* members given twice */
    BAD(PUT, "{\"key\":\"a\",\"key\":\"b\",\"value\":\"v\"}", "key"),
    BAD(PUT, "{\"key\":\"a\",\"value\":\"v\",\"value\":\"w\"}", "value"),
    BAD(PUT,
        "{\"key\":\"a\",\"value\":\"v\",\"client_id\":1,\"client_id\":1,"
        "\"client_seq\":1}",
        "client_id"),
    /* client_id and client_seq: integers 1 .. 2^53-1, both or neither */
    BAD(PUT, "{\"key\":\"k\",\"value\":\"v\",\"client_id\":1}", "client_seq"),
    BAD(PUT, "{\"key\":\"k\",\"value\":\"v\",\"client_seq\":1}", "client_id"),
    BAD(DEL, "{\"key\":\"k\",\"client_id\":1}", "client_seq"),
    BAD(RESET, "{\"client_seq\":1}", "client_id"),
    BAD(PUT, "{\"key\":\"k\",\"value\":\"v\",\"client_id\":0,\"client_seq\":1}",
        "client_id"),
    BAD(PUT, "{\"key\":\"k\",\"value\":\"v\",\"client_id\":1,\"client_seq\":0}",
        "client_seq"),
    BAD(PUT,
        "{\"key\":\"k\",\"value\":\"v\",\"client_id\":9007199254740992,"
        "\"client_seq\":1}",
        "client_id"),
    BAD(PUT,
        "{\"key\":\"k\",\"value\":\"v\",\"client_id\":1,"
        "\"client_seq\":9007199254740993}",
        "client_seq"),
    BAD(PUT,
        "{\"key\":\"k\",\"value\":\"v\",\"client_id\":9223372036854775807,"
        "\"client_seq\":1}",
        "client_id"),
    BAD(PUT,
        "{\"key\":\"k\",\"value\":\"v\",\"client_id\":-1,\"client_seq\":1}",
        "client_id"),
    BAD(PUT,
        "{\"key\":\"k\",\"value\":\"v\",\"client_id\":-9223372036854775808,"
        "\"client_seq\":1}",
        "client_id"),
    BAD(PUT,
        "{\"key\":\"k\",\"value\":\"v\",\"client_id\":1.5,\"client_seq\":1}",
        "client_id"),
    BAD(PUT,
        "{\"key\":\"k\",\"value\":\"v\",\"client_id\":1.0,\"client_seq\":1}",
        "client_id"),
    BAD(PUT,
        "{\"key\":\"k\",\"value\":\"v\",\"client_id\":1e3,\"client_seq\":1}",
        "client_id"),
    BAD(PUT,
        "{\"key\":\"k\",\"value\":\"v\",\"client_id\":\"7\",\"client_seq\":1}",
        "client_id"),
    BAD(PUT,
        "{\"key\":\"k\",\"value\":\"v\",\"client_id\":true,\"client_seq\":1}",
        "client_id"),
    BAD(PUT,
        "{\"key\":\"k\",\"value\":\"v\",\"client_id\":null,\"client_seq\":1}",
        "client_id"),
    BAD(PUT,
        "{\"key\":\"k\",\"value\":\"v\",\"client_id\":[1],\"client_seq\":1}",
        "client_id"),
    BAD(PUT,
        "{\"key\":\"k\",\"value\":\"v\",\"client_id\":1,\"client_seq\":\"1\"}",
        "client_seq"),
    BAD(PUT,
        "{\"key\":\"k\",\"value\":\"v\",\"client_id\":1,\"client_seq\":-0}",
        "client_seq"),
    BAD(RESET, "{\"client_id\":1.5,\"client_seq\":1}", "client_id"),
    BAD(RESET, "{\"client_id\":1,\"client_seq\":false}", "client_seq"),
    /* numbers too big for any integer type: both fields named */
    BAD(PUT,
        "{\"key\":\"k\",\"value\":\"v\",\"client_id\":9223372036854775808,"
        "\"client_seq\":1}",
        "client_id"),
    BAD(PUT,
        "{\"key\":\"k\",\"value\":\"v\",\"client_id\":1,\"client_seq\":"
        "99999999999999999999999999999999999999999999999999}",
        "client_seq"),
    BAD(PUT,
        "{\"key\":\"k\",\"value\":\"v\",\"client_id\":1e400,\"client_seq\":1}",
        "client_id"),
    BAD(PUT,
        "{\"key\":\"k\",\"value\":\"v\",\"client_id\":1e300,\"client_seq\":1}",
        "client_id"),
    BAD(PUT, "{\"key\":\"k\",\"value\":\"v\",\"client_id\":-,\"client_seq\":1}",
        "JSON"),
    BAD(PUT,
        "{\"key\":\"k\",\"value\":\"v\",\"client_id\":01,\"client_seq\":1}",
        "JSON"),
    /* invalid UTF-8 and bad escapes */
    BAD(PUT, "{\"key\":\"k\xff\xfe\",\"value\":\"v\"}", "UTF-8"),
    BAD(PUT, "{\"key\":\"k\",\"value\":\"\xc0\x80\"}", "UTF-8"),
    BAD(PUT, "{\"key\":\"\xed\xa0\x80\",\"value\":\"v\"}", "UTF-8"),
    BAD(PUT, "{\"key\":\"\xf8\x88\x80\x80\x80\",\"value\":\"v\"}", "UTF-8"),
    BAD(PUT, "{\"key\":\"\xe2\x82\",\"value\":\"v\"}", "UTF-8"),
    BAD(PUT, "{\"key\":\"k\",\"value\":\"v\xe2\x82", "UTF-8"),
    BAD(PUT, "{\"k\xffy\":\"k\",\"value\":\"v\"}", "UTF-8"),
    BAD(PUT, "{\"key\":\"k\",\"value\":\"\\ud800\"}", "JSON"),
    BAD(PUT, "{\"key\":\"k\",\"value\":\"\\udc00\\ud800\"}", "JSON"),
    BAD(PUT, "{\"key\":\"k\",\"value\":\"\\x41\"}", "JSON"),
    BAD(PUT, "{\"key\":\"k\",\"value\":\"\\u12\"}", "JSON"),
    /* raw control characters and NUL bytes */
    BAD(PUT, "{\"key\":\"a\tb\",\"value\":\"v\"}", "JSON"),
    BAD(PUT, "{\"key\":\"a\0b\",\"value\":\"v\"}", "JSON"),
    BAD(PUT, "{\"key\":\"k\",\"value\":\"v\"}\0", "JSON"),
    BAD(PUT, "\0{\"key\":\"k\",\"value\":\"v\"}", "JSON"),
    BAD(PUT, "{\"key\":\"k\",\0\"value\":\"v\"}", "JSON"),
    BAD(PUT, "{\"ke\\u0000y\":\"k\",\"key\":\"k\",\"value\":\"v\"}", "JSON"),
    /* limits: bytes, with the setting named */
    LARGE(PUT, "{\"key\":\"123456789\",\"value\":\"v\"}", "MAX_KEY_BYTES"),
    LARGE(DEL, "{\"key\":\"123456789\"}", "MAX_KEY_BYTES"),
    LARGE(PUT,
          "{\"key\":\"\xd0\xb6\xd0\xb6\xd0\xb6\xd0\xb6x\",\"value\":\"v\"}",
          "MAX_KEY_BYTES"),
    LARGE(PUT,
          "{\"key\":\"\\u0000\\u0000\\u0000\\u0000\\u0000\\u0000\\u0000"
          "\\u0000\\u0000\",\"value\":\"v\"}",
          "MAX_KEY_BYTES"),
    LARGE(PUT, "{\"key\":\"k\",\"value\":\"0123456789abcdefg\"}",
          "MAX_VALUE_BYTES"),
    /* 400 comes before 413 */
    BAD(PUT, "{\"key\":\"123456789\",\"value\":\"v\",\"client_id\":1}",
        "client_seq"),
};

static void check_bad_write(size_t i, const bad_write_t *row) {
    qkv_rest_write_t out;
    qkv_rest_error_t err;
    memset(&err, 0, sizeof err);
    int rc = qkv_rest_parse_write(row->body.bytes, row->body.len, row->op,
                                  &s_limits, &out, &err);
    char body[600], what[700];
    show(row->body.bytes, row->body.len, body, sizeof body);
    snprintf(what, sizeof what, "bad row %zu %s %s", i, s_op_name(row->op),
             body);
    expect_error(what, rc, &err, row->http, row->status, row->names);
    CU_ASSERT(out.root == NULL); /* nothing left to free */
    if (rc == 0)
        qkv_rest_write_free(&out);
}

static void test_bad_writes(void) {
    size_t n = sizeof s_bad_writes / sizeof s_bad_writes[0];
    for (size_t i = 0; i < n; i++)
        check_bad_write(i, &s_bad_writes[i]);
}

/* The 400 messages of today's gateway are kept. */
static void test_write_messages(void) {
    static const struct {
        qkv_op_t op;
        const char *body;
        const char *message;
    } rows[] = {
        {PUT, "", "empty body; expected {\"key\": string, \"value\": string}"},
        {PUT, "{\"value\":\"x\"}",
         "missing \"key\"; expected {\"key\": string, \"value\": string}"},
        {PUT, "{\"key\":\"k\",\"value\":1}", "\"value\" must be a JSON string"},
        {PUT, "[]", "body must be a JSON object"},
        {PUT, "{\"key\":\"\",\"value\":\"\"}", "key must not be empty"},
        {PUT, "{\"key\":\"123456789\",\"value\":\"\"}",
         "key is 9 bytes; the limit is 8 (MAX_KEY_BYTES)"},
        {PUT, "{\"key\":\"k\",\"value\":\"0123456789abcdefgh\"}",
         "value is 18 bytes; the limit is 16 (MAX_VALUE_BYTES)"},
        {PUT,
         "{\"key\":\"k\",\"value\":\"v\",\"client_id\":0,\"client_seq\":1}",
         "\"client_id\" must be an integer from 1 to 9007199254740991"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        qkv_rest_write_t out;
        qkv_rest_error_t err;
        int rc = qkv_rest_parse_write(rows[i].body, strlen(rows[i].body),
                                      rows[i].op, &s_limits, &out, &err);
        CU_ASSERT_EQUAL(rc, -1);
        KIT_ASSERT_STR(rc ? err.message : "", rows[i].message);
    }
}

/* Nesting far past jansson's depth limit: refused, no crash. */
static void test_deep_nesting(void) {
    static const char *shapes[] = {"[", "{\"a\":", "{\"key\":\"k\",\"x\":["};
    for (size_t s = 0; s < 3; s++) {
        size_t depth = 100000, unit = strlen(shapes[s]);
        char *body = malloc(depth * unit + 1);
        CU_ASSERT_FATAL(body != NULL);
        for (size_t i = 0; i < depth; i++)
            memcpy(body + i * unit, shapes[s], unit);
        qkv_rest_write_t out;
        qkv_rest_error_t err;
        int rc = qkv_rest_parse_write(body, depth * unit, QKV_OP_PUT, &s_limits,
                                      &out, &err);
        expect_error("deep nesting", rc, &err, 400, "bad_request", "JSON");
        free(body);
    }
    /* 33 levels: refused before jansson recurses (a civetweb worker's
       stack held about 960: test_hostile's crash) */
    char body[128] = "";
    for (int i = 0; i < 33; i++)
        strcat(body, "[");
    qkv_rest_write_t out;
    qkv_rest_error_t err;
    int rc = qkv_rest_parse_write(body, strlen(body), QKV_OP_PUT, &s_limits,
                                  &out, &err);
    expect_error("33 levels", rc, &err, 400, "bad_request", "deeper than 32");
}

/* A huge string and a huge number: answered, sizes named. */
static void test_huge_members(void) {
    size_t n = 4 << 20;
    char *body = malloc(n + 64);
    CU_ASSERT_FATAL(body != NULL);
    /* a 4 MiB value */
    size_t len = (size_t)sprintf(body, "{\"key\":\"k\",\"value\":\"");
    memset(body + len, 'v', n);
    len += n;
    len += (size_t)sprintf(body + len, "\"}");
    qkv_rest_write_t out;
    qkv_rest_error_t err;
    int rc = qkv_rest_parse_write(body, len, QKV_OP_PUT, &s_limits, &out, &err);
    expect_error("4 MiB value", rc, &err, 413, "too_large", "MAX_VALUE_BYTES");
    CU_ASSERT(strstr(err.message, "4194304") != NULL);
    /* a client_id of 4 Mi digits */
    len =
        (size_t)sprintf(body, "{\"key\":\"k\",\"value\":\"v\",\"client_id\":");
    memset(body + len, '9', n);
    len += n;
    len += (size_t)sprintf(body + len, ",\"client_seq\":1}");
    rc = qkv_rest_parse_write(body, len, QKV_OP_PUT, &s_limits, &out, &err);
    expect_error("4 Mi digits", rc, &err, 400, "bad_request", "client_id");
    free(body);
}

/* Today's limits (4096, 1 MiB) at and past the edge. */
static void test_default_limits(void) {
    const qkv_rest_limits_t limits = {4096, 1048576};
    size_t sizes[][3] = {/* key, value, http */
                         {4096, 1, 0},
                         {4097, 1, 413},
                         {1, 1048576, 0},
                         {1, 1048577, 413}};
    for (size_t i = 0; i < 4; i++) {
        size_t key = sizes[i][0], value = sizes[i][1];
        char *body = malloc(key + value + 64);
        CU_ASSERT_FATAL(body != NULL);
        size_t len = (size_t)sprintf(body, "{\"key\":\"");
        memset(body + len, 'k', key);
        len += key;
        len += (size_t)sprintf(body + len, "\",\"value\":\"");
        memset(body + len, 'v', value);
        len += value;
        len += (size_t)sprintf(body + len, "\"}");
        qkv_rest_write_t out;
        qkv_rest_error_t err;
        int rc =
            qkv_rest_parse_write(body, len, QKV_OP_PUT, &limits, &out, &err);
        if (sizes[i][2] == 0) {
            CU_ASSERT_EQUAL(rc, 0);
            CU_ASSERT(out.write.key_len == key && out.write.value_len == value);
            qkv_rest_write_free(&out);
        } else {
            expect_error("default limits", rc, &err, 413, "too_large",
                         key > 4096 ? "MAX_KEY_BYTES" : "MAX_VALUE_BYTES");
        }
        free(body);
    }
}

/*  ---------------------------------------------------------------------
    Write bodies: random bytes and mutations */

/* Any answer must be one of ours: 0, or 400/413 with a message. */
static bool s_sane(int rc, const qkv_rest_write_t *out,
                   const qkv_rest_error_t *err) {
    if (rc == 0)
        return out->write.key != NULL &&
               (out->write.op == QKV_OP_RESET || out->write.key_len > 0) &&
               out->write.key_len <= s_limits.max_key_bytes &&
               out->write.value_len <= s_limits.max_value_bytes &&
               (out->write.client_id == 0) == (out->write.client_seq == 0) &&
               out->write.client_id <= QKV_REST_MAX_CLIENT_INT &&
               out->write.client_seq <= QKV_REST_MAX_CLIENT_INT;
    return rc == -1 && err->message[0] != '\0' &&
           ((err->http == 400 && strcmp(err->status, "bad_request") == 0) ||
            (err->http == 413 && strcmp(err->status, "too_large") == 0));
}

static void test_random_writes(void) {
    static const char *seeds[] = {
        "{\"key\":\"k\",\"value\":\"v\",\"client_id\":12,\"client_seq\":34}",
        "{\"key\":\"a\\u0000b\",\"value\":\"\\ud83d\\ude00\"}",
        "{\"client_id\":9007199254740991,\"client_seq\":1}",
    };
    static const qkv_op_t ops[] = {QKV_OP_PUT, QKV_OP_DELETE, QKV_OP_RESET};
    kit_rng_t rng;
    kit_rng_seed(&rng, 20250101);
    char buf[256];
    int insane = 0;
    for (int round = 0; round < 60000; round++) {
        size_t len;
        if (round % 2 == 0) { /* random bytes, biased towards JSON */
            static const char alphabet[] = "{}[]\":,0123456789-.eE+ "
                                           "\\u\x00\xff\xc3\xa9keyvalclient_";
            len = kit_rng_below(&rng, sizeof buf);
            for (size_t i = 0; i < len; i++)
                buf[i] =
                    kit_rng_below(&rng, 4) == 0
                        ? (char)kit_rng_next(&rng)
                        : alphabet[kit_rng_below(&rng, sizeof alphabet - 1)];
        } else { /* a good body with a few bytes changed, cut or repeated */
            const char *seed = seeds[kit_rng_below(&rng, 3)];
            len = strlen(seed);
            memcpy(buf, seed, len);
            for (uint64_t k = kit_rng_below(&rng, 4) + 1; k > 0; k--) {
                size_t at = kit_rng_below(&rng, len);
                switch (kit_rng_below(&rng, 3)) {
                case 0:
                    buf[at] = (char)kit_rng_next(&rng);
                    break;
                case 1:
                    len = at;
                    break;
                default:
                    if (len < sizeof buf / 2) {
                        memmove(buf + at + len - at, buf + at, len - at);
                        len += len - at;
                    }
                }
                if (len == 0)
                    break;
            }
        }
        qkv_op_t op = ops[kit_rng_below(&rng, 3)];
        qkv_rest_write_t out;
        qkv_rest_error_t err;
        memset(&err, 0, sizeof err);
        int rc = qkv_rest_parse_write(buf, len, op, &s_limits, &out, &err);
        if (!s_sane(rc, &out, &err)) {
            char what[600];
            show(buf, len, what, sizeof what);
            fprintf(stderr, "\n  round %d %s [%s]: rc %d %d %s", round,
                    s_op_name(op), what, rc, err.http, err.message);
            insane++;
        }
        qkv_rest_write_free(&out);
    }
    CU_ASSERT_EQUAL(insane, 0);
}

/*  ---------------------------------------------------------------------
    Query strings */

typedef struct {
    bytes_t query;
    bool want_key;
    int http;          /* 0: parsed */
    const char *names; /* error: a word in the message */
    bytes_t key;       /* parsed: the key */
    uint64_t min_index, wait_ms;
} query_row_t;

#define Q_OK(q, key, min, wait)                                                \
    { B(q), true, 0, NULL, B(key), min, wait }
#define Q_DUMP(q, min, wait)                                                   \
    { B(q), false, 0, NULL, NONE, min, wait }
#define Q_BAD(q, names)                                                        \
    { B(q), true, 400, names, NONE, 0, 0 }
#define Q_DUMP_BAD(q, names)                                                   \
    { B(q), false, 400, names, NONE, 0, 0 }
#define Q_LARGE(q)                                                             \
    { B(q), true, 413, "MAX_KEY_BYTES", NONE, 0, 0 }

static const query_row_t s_queries[] = {
    Q_OK("key=abc", "abc", 0, 0),
    Q_OK("key=a+b", "a b", 0, 0),
    Q_OK("key=a%20b%2Bc", "a b+c", 0, 0),
    Q_OK("key=%7e%7E", "~~", 0, 0),
    Q_OK("key=%00x", "\0x", 0, 0),
    Q_OK("key=a%26b%3Dc", "a&b=c", 0, 0),
    Q_OK("key=%25", "%", 0, 0),
    Q_OK("key=%ff%FE", "\xff\xfe", 0, 0),
    Q_OK("key=a=b", "a=b", 0, 0),
    Q_OK("key=a\0b", "a\0b", 0, 0),
    Q_OK("key=\xd0\xb6", "\xd0\xb6", 0, 0),
    Q_OK("other=1&key=k&x", "k", 0, 0),
    Q_OK("&&key=k&&", "k", 0, 0),
    Q_OK("=&key=k", "k", 0, 0),
    Q_OK("xkey=a&key=b&keyx=c", "b", 0, 0),
    Q_OK("key=12345678", "12345678", 0, 0),
    Q_OK("key=%31%32%33%34%35%36%37%38", "12345678", 0, 0),
    Q_OK("key=k&min_index=5&wait_ms=100", "k", 5, 100),
    Q_OK("wait_ms=100&key=k&min_index=5", "k", 5, 100),
    Q_OK("key=k&min_index=0&wait_ms=0", "k", 0, 0),
    Q_OK("key=k&min_index=18446744073709551615", "k", UINT64_MAX, 0),
    Q_OK("key=k&wait_ms=60000", "k", 0, 60000),
    Q_OK("key=k&min_index=%31%32", "k", 12, 0),
    Q_OK("key=k&min_index=0000000000000000000000000000000000000000000007", "k",
         7, 0),
    Q_OK("key=k&wait_ms=00060000", "k", 0, 60000),
    Q_OK("KEY=x&key=k&Min_Index=zz", "k", 0, 0),
    /* the key */
    Q_BAD("", "missing key"),
    Q_BAD("other=1", "missing key"),
    Q_BAD("KEY=k", "missing key"),
    Q_BAD("key%3Dk", "missing key"),
    Q_BAD("key=", "key must not be empty"),
    Q_BAD("key", "key must not be empty"),
    Q_BAD("key=&min_index=1", "key must not be empty"),
    Q_BAD("key=a&key=b", "key given more than once"),
    Q_BAD("key=a&key=a", "key"),
    Q_BAD("key=%", "key"),
    Q_BAD("key=%4", "key"),
    Q_BAD("key=abc%", "key"),
    Q_BAD("key=ab%4", "key"),
    Q_BAD("key=%zz", "key"),
    Q_BAD("key=%g0", "key"),
    Q_BAD("key=%0g", "key"),
    Q_BAD("key=%%41", "key"),
    Q_BAD("key=%\0"
          "0",
          "key"),
    Q_LARGE("key=123456789"),
    Q_LARGE("key=%31%32%33%34%35%36%37%38%39"),
    Q_LARGE("key=+++++++++"),
    /* min_index and wait_ms */
    Q_BAD("key=k&min_index=", "min_index"),
    Q_BAD("key=k&min_index", "min_index"),
    Q_BAD("key=k&min_index=abc", "min_index"),
    Q_BAD("key=k&min_index=-1", "min_index"),
    Q_BAD("key=k&min_index=+1", "min_index"),
    Q_BAD("key=k&min_index=%2B1", "min_index"),
    Q_BAD("key=k&min_index=1.5", "min_index"),
    Q_BAD("key=k&min_index=1e3", "min_index"),
    Q_BAD("key=k&min_index=0x10", "min_index"),
    Q_BAD("key=k&min_index=1%20", "min_index"),
    Q_BAD("key=k&min_index=1%00", "min_index"),
    Q_BAD("key=k&min_index=1\0", "min_index"),
    Q_BAD("key=k&min_index=%3", "min_index"),
    Q_BAD("key=k&min_index=18446744073709551616", "min_index"),
    Q_BAD("key=k&min_index=99999999999999999999999999999", "min_index"),
    Q_BAD("key=k&min_index=1&min_index=1", "min_index"),
    Q_BAD("key=k&wait_ms=60001", "wait_ms"),
    Q_BAD("key=k&wait_ms=-0", "wait_ms"),
    Q_BAD("key=k&wait_ms=", "wait_ms"),
    Q_BAD("key=k&wait_ms=1&wait_ms=2", "wait_ms"),
    Q_BAD("key=k&wait_ms=4294967296", "wait_ms"),
    /* key errors come first */
    Q_BAD("min_index=x", "missing key"),
    Q_LARGE("key=123456789&min_index=x"),
    /* without a key (GET /dump) the key is not looked at */
    Q_DUMP("", 0, 0),
    Q_DUMP("key=a&key=b&key=%zz", 0, 0),
    Q_DUMP("min_index=3&wait_ms=4", 3, 4),
    Q_DUMP("trace=1&min_index=3", 3, 0),
    Q_DUMP_BAD("min_index=x", "min_index"),
    Q_DUMP_BAD("wait_ms=70000", "wait_ms"),
    Q_DUMP_BAD("min_index=1&min_index=2", "min_index"),
};

static void check_query(size_t i, const query_row_t *row, size_t key_cap) {
    char key[16];
    qkv_rest_query_t q;
    qkv_rest_error_t err;
    memset(&err, 0, sizeof err);
    memset(key, '#', sizeof key);
    int rc =
        qkv_rest_parse_query(row->query.bytes, row->query.len, row->want_key,
                             &s_limits, key, key_cap, &q, &err);
    char shown[300], what[400];
    show(row->query.bytes, row->query.len, shown, sizeof shown);
    snprintf(what, sizeof what, "query row %zu%s [%s]", i,
             row->want_key ? "" : " (no key)", shown);
    if (row->http != 0) {
        expect_error(what, rc, &err, row->http,
                     row->http == 413 ? "too_large" : "bad_request",
                     row->names);
        return;
    }
    bool ok =
        rc == 0 && q.min_index == row->min_index && q.wait_ms == row->wait_ms &&
        (row->want_key ? bytes_eq(key, q.key_len, &row->key) : q.key_len == 0);
    if (!ok)
        fprintf(stderr, "\n  [%s]: rc %d, %s", what, rc, rc ? err.message : "");
    CU_ASSERT(ok);
    for (size_t b = key_cap; b < sizeof key; b++) /* nothing past key_cap */
        CU_ASSERT(key[b] == '#');
}

static void test_transfer_bodies(void) {
    char to[8];
    qkv_rest_error_t err;
    const char *ok = "{\"to\":\"node3\",\"why\":1}";
    CU_ASSERT_EQUAL(
        qkv_rest_parse_transfer(ok, strlen(ok), to, sizeof to, &err), 0);
    KIT_ASSERT_STR(to, "node3");
    static const char *bad[] = {"",
                                "{}",
                                "[]",
                                "{\"to\":3}",
                                "{\"to\":\"\"}",
                                "{\"to\":\"12345678\"}",
                                "{\"to\":\"a\\u0000b\"}",
                                "{\"to\":\"a\",\"to\":\"b\"}",
                                "{\"to\":\"a\"",
                                "\"a\""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = qkv_rest_parse_transfer(bad[i], strlen(bad[i]), to, sizeof to,
                                         &err);
        if (rc != -1)
            fprintf(stderr, "\n  transfer body %s: %d\n", bad[i], rc);
        CU_ASSERT_EQUAL(rc, -1);
        CU_ASSERT_EQUAL(err.http, 400);
    }
}

static void test_queries(void) {
    size_t n = sizeof s_queries / sizeof s_queries[0];
    for (size_t i = 0; i < n; i++)
        check_query(i, &s_queries[i], s_limits.max_key_bytes);
}

/* A key buffer smaller than the limit: too_large, never overrun. */
static void test_query_key_cap(void) {
    char key[8];
    qkv_rest_query_t q;
    qkv_rest_error_t err;
    memset(key, '#', sizeof key);
    const char *query = "key=12345";
    int rc = qkv_rest_parse_query(query, strlen(query), true, &s_limits, key, 4,
                                  &q, &err);
    expect_error("key_cap 4", rc, &err, 413, "too_large", "MAX_KEY_BYTES");
    for (size_t b = 4; b < sizeof key; b++)
        CU_ASSERT(key[b] == '#');
    query = "key=1234";
    CU_ASSERT_EQUAL(qkv_rest_parse_query(query, strlen(query), true, &s_limits,
                                         key, 4, &q, &err),
                    0);
    CU_ASSERT(q.key_len == 4 && memcmp(key, "1234", 4) == 0);
    /* NULL with length 0 */
    CU_ASSERT_EQUAL(
        qkv_rest_parse_query(NULL, 0, false, &s_limits, NULL, 0, &q, &err), 0);
    rc = qkv_rest_parse_query(NULL, 0, true, &s_limits, key, 4, &q, &err);
    expect_error("NULL query", rc, &err, 400, "bad_request", "missing key");
    /* only len bytes are read */
    query = "key=abcdef";
    CU_ASSERT_EQUAL(
        qkv_rest_parse_query(query, 6, true, &s_limits, key, 4, &q, &err), 0);
    CU_ASSERT(q.key_len == 2 && memcmp(key, "ab", 2) == 0);
    CU_ASSERT_EQUAL(
        qkv_rest_parse_query(query, 5, true, &s_limits, key, 4, &q, &err), 0);
    CU_ASSERT(q.key_len == 1);
    rc = qkv_rest_parse_query("key=%41", 6, true, &s_limits, key, 4, &q, &err);
    expect_error("cut escape", rc, &err, 400, "bad_request", "key");
}

/* Long queries: a megabyte of escapes, of separators, of a number. */
static void test_huge_queries(void) {
    const qkv_rest_limits_t limits = {4096, 1048576};
    size_t n = 1 << 20;
    char *query = malloc(n + 16), *key = malloc(4096);
    CU_ASSERT_FATAL(query && key);
    qkv_rest_query_t q;
    qkv_rest_error_t err;
    /* 4096 escaped bytes: fine; one more: 413 */
    size_t len = (size_t)sprintf(query, "key=");
    for (size_t i = 0; i < 4096; i++)
        len += (size_t)sprintf(query + len, "%%%02X", (unsigned)(i & 0xff));
    CU_ASSERT_EQUAL(
        qkv_rest_parse_query(query, len, true, &limits, key, 4096, &q, &err),
        0);
    CU_ASSERT(q.key_len == 4096 && (unsigned char)key[255] == 255);
    len += (size_t)sprintf(query + len, "%%41");
    int rc =
        qkv_rest_parse_query(query, len, true, &limits, key, 4096, &q, &err);
    expect_error("4097 escapes", rc, &err, 413, "too_large", "MAX_KEY_BYTES");
    /* a megabyte of '%' */
    memcpy(query, "key=", 4);
    memset(query + 4, '%', n - 4);
    rc = qkv_rest_parse_query(query, n, true, &limits, key, 4096, &q, &err);
    expect_error("1 MiB of %", rc, &err, 400, "bad_request", "key");
    /* a megabyte of '&' around a key */
    memset(query, '&', n);
    memcpy(query + n / 2, "key=k", 5);
    CU_ASSERT_EQUAL(
        qkv_rest_parse_query(query, n, true, &limits, key, 4096, &q, &err), 0);
    CU_ASSERT(q.key_len == 1 && key[0] == 'k');
    /* a megabyte of zeros then 1 as min_index; a megabyte of nines */
    len = (size_t)sprintf(query, "key=k&min_index=");
    memset(query + len, '0', n - len - 1);
    query[n - 1] = '1';
    CU_ASSERT_EQUAL(
        qkv_rest_parse_query(query, n, true, &limits, key, 4096, &q, &err), 0);
    CU_ASSERT_EQUAL(q.min_index, 1);
    memset(query + len, '9', n - len);
    rc = qkv_rest_parse_query(query, n, true, &limits, key, 4096, &q, &err);
    expect_error("1 MiB of nines", rc, &err, 400, "bad_request", "min_index");
    free(query);
    free(key);
}

static void test_random_queries(void) {
    static const char alphabet[] = "key=min_index=wait_ms=&%+0123456789aF\0";
    kit_rng_t rng;
    kit_rng_seed(&rng, 7);
    char query[128], key[8];
    int insane = 0;
    for (int round = 0; round < 100000; round++) {
        size_t len = kit_rng_below(&rng, sizeof query);
        for (size_t i = 0; i < len; i++)
            query[i] = kit_rng_below(&rng, 8) == 0
                           ? (char)kit_rng_next(&rng)
                           : alphabet[kit_rng_below(&rng, sizeof alphabet)];
        bool want_key = kit_rng_below(&rng, 2);
        qkv_rest_query_t q;
        qkv_rest_error_t err;
        memset(&err, 0, sizeof err);
        int rc = qkv_rest_parse_query(query, len, want_key, &s_limits, key,
                                      sizeof key, &q, &err);
        bool sane = rc == 0 ? q.key_len <= sizeof key &&
                                  (!want_key || q.key_len > 0) &&
                                  q.wait_ms <= QKV_REST_MAX_WAIT_MS
                            : rc == -1 && err.message[0] &&
                                  (err.http == 400 || err.http == 413);
        if (!sane) {
            char what[600];
            show(query, len, what, sizeof what);
            fprintf(stderr, "\n  round %d [%s]: rc %d %s", round, what, rc,
                    err.message);
            insane++;
        }
    }
    CU_ASSERT_EQUAL(insane, 0);
}

/*  ---------------------------------------------------------------------
    Tokens files (HTTP_TOKENS_FILE) */

/* Tokens of the rows: 20 characters, each with a word no message may
   show. */
#define T_READ "read-SECRET-0123456"
#define T_WRITE "write-SECRET-012345"

static void test_tokens_good(void) {
    static const char text[] = "# REST tokens\n"
                               "\n"
                               "read " T_READ "\n"
                               "   \t# indented comment\n"
                               "\twrite\t\t" T_WRITE "  \r\n"
                               "read 0123456789abcdef\n"          /* 16 */
                               "write ~!@#$%^&*()_+{}|:\"<>?\r\n" /* CRLF */
                               "read  last-line-no-newline";
    qkv_rest_tokens_t tokens;
    size_t line = 99;
    char why[256];
    int rc = qkv_rest_tokens_parse(text, sizeof text - 1, &tokens, &line, why,
                                   sizeof why);
    if (rc != 0)
        fprintf(stderr, "\n  line %zu: %s", line, why);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_EQUAL(tokens.count, 5);
    CU_ASSERT_EQUAL(tokens.items[0].role, QKV_REST_ROLE_READ);
    CU_ASSERT_EQUAL(tokens.items[0].len, strlen(T_READ));
    CU_ASSERT(memcmp(tokens.items[0].bytes, T_READ, strlen(T_READ)) == 0);
    CU_ASSERT_EQUAL(tokens.items[1].role, QKV_REST_ROLE_WRITE);
    CU_ASSERT_EQUAL(tokens.items[1].len, strlen(T_WRITE));
    CU_ASSERT_EQUAL(tokens.items[2].len, 16);
    CU_ASSERT_EQUAL(tokens.items[3].role, QKV_REST_ROLE_WRITE);
    CU_ASSERT_EQUAL(tokens.items[3].len, 21);
    CU_ASSERT_EQUAL(tokens.items[4].len, strlen("last-line-no-newline"));
    /* each entry is zero-padded: comparisons read every byte */
    for (size_t t = 0; t < tokens.count; t++)
        for (size_t i = tokens.items[t].len; i < QKV_REST_TOKEN_MAX; i++)
            CU_ASSERT(tokens.items[t].bytes[i] == 0);
    /* write implies read: the bits say so */
    CU_ASSERT((QKV_REST_ROLE_WRITE & QKV_REST_ROLE_READ) == QKV_REST_ROLE_READ);
    qkv_rest_tokens_free(&tokens);
    CU_ASSERT(tokens.items == NULL && tokens.count == 0);
    qkv_rest_tokens_free(&tokens); /* twice */
    qkv_rest_tokens_free(NULL);
}

/* Lengths: 16 and 256 are fine, 15 and 257 are not. */
static void test_tokens_lengths(void) {
    static const size_t lens[] = {1, 15, 16, 17, 255, 256, 257, 4000};
    for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
        size_t n = lens[k];
        char *text = malloc(n + 16);
        CU_ASSERT_FATAL(text != NULL);
        memcpy(text, "write ", 6);
        memset(text + 6, 'x', n);
        qkv_rest_tokens_t tokens;
        size_t line = 0;
        char why[256];
        int rc =
            qkv_rest_tokens_parse(text, n + 6, &tokens, &line, why, sizeof why);
        bool fits = n >= QKV_REST_TOKEN_MIN && n <= QKV_REST_TOKEN_MAX;
        CU_ASSERT_EQUAL(rc, fits ? 0 : -1);
        if (fits) {
            CU_ASSERT(tokens.count == 1 && tokens.items[0].len == n);
        } else {
            CU_ASSERT_EQUAL(line, 1);
            CU_ASSERT(strstr(why, "16 to 256") != NULL);
            CU_ASSERT(tokens.items == NULL && tokens.count == 0);
        }
        qkv_rest_tokens_free(&tokens);
        free(text);
    }
}

typedef struct {
    bytes_t text;
    size_t line;       /* the line at fault; 0: the whole file */
    const char *words; /* in the message */
} bad_tokens_t;

static void test_tokens_bad(void) {
    static const bad_tokens_t rows[] = {
        {B(""), 0, "no tokens"},
        {B("# only a comment\n\n   \n"), 0, "no tokens"},
        {B("read\n"), 1, "no token after 'read'"},
        {B("# c\nwrite   \n"), 2, "no token after 'write'"},
        {B("admin " T_WRITE "\n"), 1, "expected 'read TOKEN'"},
        {B("READ " T_READ "\n"), 1, "expected 'read TOKEN'"},
        {B(T_READ "\n"), 1, "expected 'read TOKEN'"},
        {B("read:" T_READ "\n"), 1, "expected 'read TOKEN'"},
        {B("\n\nread " T_READ " # comment\n"), 3, "more than two words"},
        {B("read " T_READ " " T_WRITE "\n"), 1, "more than two words"},
        {B("read short\n"), 1, "is 5 characters"},
        {B("read " T_READ "\x7f\n"), 1, "not printable ASCII"},
        {B("read " T_READ "\xc3\xa9\n"), 1, "not printable ASCII"},
        {B("read " T_READ "\v\n"), 1, "not printable ASCII"},
        {B("read " T_READ "\0\n"), 1, "NUL byte"},
        {B("# \0 in a comment\nread " T_READ "\n"), 1, "NUL byte"},
        {B("read " T_READ "\nwrite " T_WRITE "\nread " T_READ "\n"), 3,
         "the same token as line 1"},
        {B("read " T_READ "\n#\nwrite " T_READ "\n"), 3,
         "the same token as line 1"},
        {B("write " T_WRITE "\nread bad\n"), 2, "is 3 characters"},
        {B("write " T_WRITE "\r\nread\r\n"), 2, "no token"},
        {B("write " T_WRITE "\rread " T_READ "\n"), 1, "more than two words"},
    };
    int bad = 0;
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        qkv_rest_tokens_t tokens;
        size_t line = 99;
        char why[256] = "";
        int rc = qkv_rest_tokens_parse(rows[r].text.bytes, rows[r].text.len,
                                       &tokens, &line, why, sizeof why);
        bool ok = rc == -1 && line == rows[r].line &&
                  strstr(why, rows[r].words) != NULL &&
                  strstr(why, "SECRET") == NULL && tokens.items == NULL &&
                  tokens.count == 0;
        if (!ok) {
            char what[600];
            show(rows[r].text.bytes, rows[r].text.len, what, sizeof what);
            fprintf(stderr,
                    "\n  [%s] gave %d, line %zu \"%s\" (wanted line %zu "
                    "naming %s)",
                    what, rc, line, why, rows[r].line, rows[r].words);
            bad++;
        }
        qkv_rest_tokens_free(&tokens);
    }
    CU_ASSERT_EQUAL(bad, 0);
}

/* QKV_REST_MAX_TOKENS tokens are fine; one more is refused at its line. */
static void test_tokens_too_many(void) {
    size_t max = QKV_REST_MAX_TOKENS;
    char *text = malloc((max + 1) * 40);
    CU_ASSERT_FATAL(text != NULL);
    size_t len = 0, cut = 0;
    for (size_t i = 0; i <= max; i++) {
        cut = len; /* the text without the last line */
        len += (size_t)sprintf(text + len, "%s token-number-%06zu\n",
                               i % 2 ? "read" : "write", i);
    }
    qkv_rest_tokens_t tokens;
    size_t line = 0;
    char why[256];
    CU_ASSERT_EQUAL(
        qkv_rest_tokens_parse(text, cut, &tokens, &line, why, sizeof why), 0);
    CU_ASSERT_EQUAL(tokens.count, max);
    qkv_rest_tokens_free(&tokens);
    CU_ASSERT_EQUAL(
        qkv_rest_tokens_parse(text, len, &tokens, &line, why, sizeof why), -1);
    CU_ASSERT_EQUAL(line, max + 1);
    CU_ASSERT(strstr(why, "more than 128 tokens") != NULL);
    free(text);
}

/* Only len bytes are read; NULL with length 0 is an empty file. */
static void test_tokens_len_only(void) {
    static const char text[] = "read " T_READ "\nread " T_READ "\n";
    qkv_rest_tokens_t tokens;
    size_t line = 0;
    char why[256];
    size_t first = strlen("read " T_READ "\n");
    CU_ASSERT_EQUAL(
        qkv_rest_tokens_parse(text, first, &tokens, &line, why, sizeof why), 0);
    CU_ASSERT_EQUAL(tokens.count, 1);
    qkv_rest_tokens_free(&tokens);
    CU_ASSERT_EQUAL(
        qkv_rest_tokens_parse(text, first - 3, &tokens, &line, why, sizeof why),
        0);
    CU_ASSERT(tokens.count == 1 && tokens.items[0].len == strlen(T_READ) - 2);
    qkv_rest_tokens_free(&tokens);
    CU_ASSERT_EQUAL(
        qkv_rest_tokens_parse(NULL, 0, &tokens, &line, why, sizeof why), -1);
    CU_ASSERT_EQUAL(line, 0);
}

/* Random lines built from the file's own pieces: any bytes get an answer,
   a refusal names a line that exists, and no message shows a token. */
static void test_tokens_random(void) {
    static const char *const pieces[] = {"read",
                                         "write",
                                         " ",
                                         "\t",
                                         "\n",
                                         "\r\n",
                                         "#",
                                         "\0",
                                         "\x80",
                                         "\x7f",
                                         "x",
                                         T_READ,
                                         T_WRITE,
                                         "0123456789",
                                         "SECRET",
                                         "read ",
                                         "write ",
                                         "\n#",
                                         "\nread " T_READ,
                                         "\nwrite x"};
    kit_rng_t rng;
    kit_rng_seed(&rng, 12);
    char text[256];
    int insane = 0;
    for (int round = 0; round < 50000; round++) {
        size_t len = 0, pieces_n = kit_rng_below(&rng, 12);
        for (size_t p = 0; p < pieces_n; p++) {
            size_t k = kit_rng_below(&rng, sizeof pieces / sizeof pieces[0]);
            size_t n = k == 7 ? 1 : strlen(pieces[k]);
            if (len + n > sizeof text)
                break;
            memcpy(text + len, pieces[k], n);
            len += n;
        }
        size_t lines = 1;
        for (size_t i = 0; i < len; i++)
            lines += text[i] == '\n';
        qkv_rest_tokens_t tokens;
        size_t line = 0;
        char why[256] = "";
        int rc =
            qkv_rest_tokens_parse(text, len, &tokens, &line, why, sizeof why);
        bool sane =
            rc == 0 ? tokens.count > 0 && tokens.count <= QKV_REST_MAX_TOKENS
                    : rc == -1 && why[0] != '\0' && line <= lines &&
                          strstr(why, "SECRET") == NULL && tokens.items == NULL;
        for (size_t t = 0; rc == 0 && t < tokens.count; t++)
            sane = sane && tokens.items[t].len >= QKV_REST_TOKEN_MIN &&
                   tokens.items[t].len <= QKV_REST_TOKEN_MAX &&
                   (tokens.items[t].role == QKV_REST_ROLE_READ ||
                    tokens.items[t].role == QKV_REST_ROLE_WRITE);
        if (!sane) {
            char what[600];
            show(text, len, what, sizeof what);
            fprintf(stderr, "\n  round %d [%s]: rc %d line %zu %s", round, what,
                    rc, line, why);
            insane++;
        }
        qkv_rest_tokens_free(&tokens);
    }
    CU_ASSERT_EQUAL(insane, 0);
}

/*  ---------------------------------------------------------------------
    Tokens: lookup and the authorization decision */

static qkv_rest_tokens_t s_tokens;

static int s_tokens_init(void) {
    static const char text[] = "read " T_READ "\nwrite " T_WRITE "\n";
    size_t line;
    char why[256];
    return qkv_rest_tokens_parse(text, sizeof text - 1, &s_tokens, &line, why,
                                 sizeof why);
}

static int s_tokens_cleanup(void) {
    qkv_rest_tokens_free(&s_tokens);
    return 0;
}

static void test_tokens_find(void) {
    const qkv_rest_tokens_t *t = &s_tokens;
    CU_ASSERT_EQUAL(qkv_rest_tokens_find(t, T_READ, strlen(T_READ)),
                    QKV_REST_ROLE_READ);
    CU_ASSERT_EQUAL(qkv_rest_tokens_find(t, T_WRITE, strlen(T_WRITE)),
                    QKV_REST_ROLE_WRITE);
    /* a prefix, one byte more, the last byte changed, the first changed */
    CU_ASSERT_EQUAL(qkv_rest_tokens_find(t, T_READ, strlen(T_READ) - 1),
                    QKV_REST_ROLE_NONE);
    CU_ASSERT_EQUAL(qkv_rest_tokens_find(t, T_READ "7", strlen(T_READ) + 1),
                    QKV_REST_ROLE_NONE);
    CU_ASSERT_EQUAL(
        qkv_rest_tokens_find(t, "read-SECRET-0123457", strlen(T_READ)),
        QKV_REST_ROLE_NONE);
    CU_ASSERT_EQUAL(
        qkv_rest_tokens_find(t, "Xead-SECRET-0123456", strlen(T_READ)),
        QKV_REST_ROLE_NONE);
    /* the token followed by NUL bytes (padding must not match) */
    char padded[40];
    memset(padded, 0, sizeof padded);
    memcpy(padded, T_READ, strlen(T_READ));
    CU_ASSERT_EQUAL(qkv_rest_tokens_find(t, padded, strlen(T_READ) + 1),
                    QKV_REST_ROLE_NONE);
    CU_ASSERT_EQUAL(qkv_rest_tokens_find(t, padded, sizeof padded),
                    QKV_REST_ROLE_NONE);
    CU_ASSERT_EQUAL(qkv_rest_tokens_find(t, "", 0), QKV_REST_ROLE_NONE);
    CU_ASSERT_EQUAL(qkv_rest_tokens_find(t, NULL, 20), QKV_REST_ROLE_NONE);
    CU_ASSERT_EQUAL(qkv_rest_tokens_find(NULL, T_READ, strlen(T_READ)),
                    QKV_REST_ROLE_NONE);
    char huge[300];
    memset(huge, 'x', sizeof huge);
    CU_ASSERT_EQUAL(qkv_rest_tokens_find(t, huge, sizeof huge),
                    QKV_REST_ROLE_NONE);
}

typedef struct {
    const char *header;    /* Authorization; NULL: none */
    qkv_rest_role_t role;  /* the role it carries */
    int open, read, write; /* HTTP status per route kind (0: allowed) */
} auth_row_t;

static void test_authorize(void) {
    static const auth_row_t rows[] = {
        {NULL, QKV_REST_ROLE_NONE, 0, 401, 401},
        {"", QKV_REST_ROLE_NONE, 0, 401, 401},
        {"Bearer " T_READ, QKV_REST_ROLE_READ, 0, 0, 403},
        {"Bearer " T_WRITE, QKV_REST_ROLE_WRITE, 0, 0, 0},
        {"bearer " T_WRITE, QKV_REST_ROLE_WRITE, 0, 0, 0},
        {"BEARER \t " T_READ " \t", QKV_REST_ROLE_READ, 0, 0, 403},
        {"Bearer wrong-token-0123456789", QKV_REST_ROLE_NONE, 0, 401, 401},
        {"Bearer " T_READ "x", QKV_REST_ROLE_NONE, 0, 401, 401},
        {"Bearer " T_READ " " T_WRITE, QKV_REST_ROLE_NONE, 0, 401, 401},
        {"Bearer", QKV_REST_ROLE_NONE, 0, 401, 401},
        {"Bearer ", QKV_REST_ROLE_NONE, 0, 401, 401},
        {"Bearer" T_READ, QKV_REST_ROLE_NONE, 0, 401, 401},
        {"Basic " T_WRITE, QKV_REST_ROLE_NONE, 0, 401, 401},
        {T_WRITE, QKV_REST_ROLE_NONE, 0, 401, 401},
    };
    static const qkv_rest_need_t needs[] = {
        QKV_REST_NEED_NONE, QKV_REST_NEED_READ, QKV_REST_NEED_WRITE};
    int bad = 0;
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        const int want[] = {rows[r].open, rows[r].read, rows[r].write};
        for (size_t n = 0; n < 3; n++) {
            qkv_rest_role_t role = (qkv_rest_role_t)42;
            qkv_rest_verdict_t v =
                qkv_rest_authorize(&s_tokens, needs[n], rows[r].header, &role);
            int http = qkv_rest_verdict_http(v);
            /* no header: no token; a header that does not match: bad */
            bool kind_ok = http != 401 ||
                           (rows[r].header == NULL || rows[r].header[0] == '\0'
                                ? v == QKV_REST_NO_TOKEN
                                : v == QKV_REST_BAD_TOKEN);
            if (http != want[n] || role != rows[r].role || !kind_ok) {
                fprintf(stderr,
                        "\n  [%s] need %zu: %d role %d (wanted %d role %d)",
                        rows[r].header ? rows[r].header : "(none)", n, http,
                        (int)role, want[n], (int)rows[r].role);
                bad++;
            }
        }
    }
    CU_ASSERT_EQUAL(bad, 0);
    /* without a tokens file everything is open, as a writer */
    for (size_t n = 0; n < 3; n++) {
        qkv_rest_role_t role = QKV_REST_ROLE_NONE;
        CU_ASSERT_EQUAL(qkv_rest_authorize(NULL, needs[n], NULL, &role),
                        QKV_REST_ALLOWED);
        CU_ASSERT_EQUAL(role, QKV_REST_ROLE_WRITE);
        CU_ASSERT_EQUAL(
            qkv_rest_authorize(NULL, needs[n], "Bearer junk", &role),
            QKV_REST_ALLOWED);
    }
    CU_ASSERT_EQUAL(qkv_rest_verdict_http(QKV_REST_ALLOWED), 0);
    CU_ASSERT_EQUAL(qkv_rest_verdict_http(QKV_REST_NO_TOKEN), 401);
    CU_ASSERT_EQUAL(qkv_rest_verdict_http(QKV_REST_BAD_TOKEN), 401);
    CU_ASSERT_EQUAL(qkv_rest_verdict_http(QKV_REST_READ_ONLY), 403);
}

/*  ---------------------------------------------------------------------
    Runner */

static int s_add_suites(void) {
    static const kit_test_t writes[] = {
        KIT_TEST(test_good_writes),     KIT_TEST(test_null_body),
        KIT_TEST(test_write_free),      KIT_TEST(test_write_reads_len_only),
        KIT_TEST(test_bad_writes),      KIT_TEST(test_write_messages),
        KIT_TEST(test_deep_nesting),    KIT_TEST(test_huge_members),
        KIT_TEST(test_default_limits),  KIT_TEST(test_random_writes),
        KIT_TEST(test_transfer_bodies), KIT_TESTS_END};
    static const kit_test_t queries[] = {
        KIT_TEST(test_queries), KIT_TEST(test_query_key_cap),
        KIT_TEST(test_huge_queries), KIT_TEST(test_random_queries),
        KIT_TESTS_END};
    static const kit_test_t tokens_files[] = {KIT_TEST(test_tokens_good),
                                              KIT_TEST(test_tokens_lengths),
                                              KIT_TEST(test_tokens_bad),
                                              KIT_TEST(test_tokens_too_many),
                                              KIT_TEST(test_tokens_len_only),
                                              KIT_TEST(test_tokens_random),
                                              KIT_TESTS_END};
    static const kit_test_t access[] = {
        KIT_TEST(test_tokens_find), KIT_TEST(test_authorize), KIT_TESTS_END};
    if (!kit_add_suite("rest_write", NULL, NULL, writes))
        return -1;
    if (!kit_add_suite("rest_query", NULL, NULL, queries))
        return -1;
    if (!kit_add_suite("rest_tokens_file", NULL, NULL, tokens_files))
        return -1;
    return kit_add_suite("rest_access", s_tokens_init, s_tokens_cleanup, access)
               ? 0
               : -1;
}

int main(void) {
    return kit_run(s_add_suites);
}
