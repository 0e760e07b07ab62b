/*  qkv_rest.c - the REST API's request parsing as pure functions (see
    qkv_rest.h): write bodies through jansson, query strings by hand.

    Bodies: jansson parses with duplicate members refused and \u0000
    allowed in strings; it bounds nesting itself (JSON_PARSER_MAX_DEPTH)
    and refuses invalid UTF-8 and integers beyond its json_int_t. Its error
    codes pick our answer: out of memory is 503, the rest 400. Checks run
    in a fixed order, the first failure answers: JSON, object, key, value,
    client_id, client_seq, the pair, empty key, then the sizes (413).

    Queries: one pass splits name=value pairs and remembers where the
    three we know are; each value is then percent-decoded on the fly into
    the caller's buffer (the key) or into a running number (min_index,
    wait_ms), so no length or digit count is ever trusted.
*/
#include "qkv_rest.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

//  ---------------------------------------------------------------------
//  Errors

static int s_fail(qkv_rest_error_t *err, int http, const char *status,
                  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int s_fail(qkv_rest_error_t *err, int http, const char *status,
                  const char *fmt, ...) {
    va_list args;
    err->http = http;
    err->status = status;
    va_start(args, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, args);
    va_end(args);
    return -1;
}

#define S_BAD(err, ...) s_fail((err), 400, "bad_request", __VA_ARGS__)
#define S_LARGE(err, ...) s_fail((err), 413, "too_large", __VA_ARGS__)

//  ---------------------------------------------------------------------
//  Write bodies

//  What the body of op looks like, for messages.

static const char *s_expected(qkv_op_t op) {
    if (op == QKV_OP_PUT)
        return "{\"key\": string, \"value\": string}";
    if (op == QKV_OP_DELETE)
        return "{\"key\": string}";
    return "an empty body or a JSON object";
}

//  Answers a body jansson refused.

static int s_json_failed(qkv_rest_error_t *err, const json_error_t *jerr) {
    switch (json_error_code(jerr)) {
    case json_error_out_of_memory:
        return s_fail(err, 503, "unavailable", "out of memory");
    case json_error_numeric_overflow:
        return S_BAD(err,
                     "number out of range at line %d, column %d; client_id "
                     "and client_seq are integers from 1 to %llu",
                     jerr->line, jerr->column, QKV_REST_MAX_CLIENT_INT);
    case json_error_invalid_utf8:
        return S_BAD(err,
                     "invalid UTF-8 at line %d, column %d; keys and values "
                     "are JSON strings of UTF-8 text",
                     jerr->line, jerr->column);
    default:
        return S_BAD(err, "malformed JSON at line %d, column %d: %s",
                     jerr->line, jerr->column, jerr->text);
    }
}

//  Member name of root as a string: sets *s and *len, or answers 400
//  (missing, or not a string).

static int s_string_member(json_t *root, const char *name, qkv_op_t op,
                           const char **s, size_t *len, qkv_rest_error_t *err) {
    json_t *str = json_object_get(root, name);
    if (str == NULL)
        return S_BAD(err, "missing \"%s\"; expected %s", name, s_expected(op));
    if (!json_is_string(str))
        return S_BAD(err, "\"%s\" must be a JSON string", name);
    *s = json_string_value(str);
    *len = json_string_length(str);
    return 0;
}

//  Optional member name of root as a client integer: *v is 0 when absent,
//  else from 1 to QKV_REST_MAX_CLIENT_INT, or answers 400.

static int s_client_member(json_t *root, const char *name, uint64_t *v,
                           qkv_rest_error_t *err) {
    json_t *n = json_object_get(root, name);
    *v = 0;
    if (n == NULL)
        return 0;
    json_int_t i = json_is_integer(n) ? json_integer_value(n) : 0;
    if (i < 1 || (unsigned long long)i > QKV_REST_MAX_CLIENT_INT)
        return S_BAD(err, "\"%s\" must be an integer from 1 to %llu", name,
                     QKV_REST_MAX_CLIENT_INT);
    *v = (uint64_t)i;
    return 0;
}

//  Checks a parsed body; fills w (pointing into root) or answers.

static int s_check_write(json_t *root, qkv_op_t op,
                         const qkv_rest_limits_t *limits, qkv_write_t *w,
                         qkv_rest_error_t *err) {
    if (!json_is_object(root))
        return S_BAD(err, "body must be a JSON object");
    if (op != QKV_OP_RESET &&
        s_string_member(root, "key", op, &w->key, &w->key_len, err) != 0)
        return -1;
    if (op == QKV_OP_PUT &&
        s_string_member(root, "value", op, &w->value, &w->value_len, err) != 0)
        return -1;
    if (s_client_member(root, "client_id", &w->client_id, err) != 0 ||
        s_client_member(root, "client_seq", &w->client_seq, err) != 0)
        return -1;
    if (w->client_id != 0 && w->client_seq == 0)
        return S_BAD(err, "\"client_id\" without \"client_seq\"; send both "
                          "or neither");
    if (w->client_id == 0 && w->client_seq != 0)
        return S_BAD(err, "\"client_seq\" without \"client_id\"; send both "
                          "or neither");
    if (op == QKV_OP_RESET)
        return 0;
    if (w->key_len == 0)
        return S_BAD(err, "key must not be empty");
    if (w->key_len > limits->max_key_bytes)
        return S_LARGE(err,
                       "key is %zu bytes; the limit is %zu (MAX_KEY_BYTES)",
                       w->key_len, limits->max_key_bytes);
    if (w->value_len > limits->max_value_bytes)
        return S_LARGE(err,
                       "value is %zu bytes; the limit is %zu "
                       "(MAX_VALUE_BYTES)",
                       w->value_len, limits->max_value_bytes);
    return 0;
}

int qkv_rest_parse_write(const char *body, size_t len, qkv_op_t op,
                         const qkv_rest_limits_t *limits, qkv_rest_write_t *out,
                         qkv_rest_error_t *err) {
    memset(out, 0, sizeof *out);
    out->write.op = op;
    if (op == QKV_OP_RESET)
        out->write.key = "";
    if (op != QKV_OP_PUT && op != QKV_OP_DELETE && op != QKV_OP_RESET)
        return S_BAD(err, "unknown operation %d", (int)op);
    if (len == 0) {
        if (op == QKV_OP_RESET)
            return 0;
        return S_BAD(err, "empty body; expected %s", s_expected(op));
    }
    json_error_t jerr;
    out->root =
        json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (out->root == NULL)
        return s_json_failed(err, &jerr);
    if (s_check_write(out->root, op, limits, &out->write, err) != 0) {
        qkv_rest_write_free(out);
        return -1;
    }
    return 0;
}

int qkv_rest_parse_transfer(const char *body, size_t len, char *to,
                            size_t to_size, qkv_rest_error_t *err) {
    if (len == 0)
        return S_BAD(err, "empty body; expected {\"to\": NODE_ID}");
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        return s_json_failed(err, &jerr);
    json_t *v = json_is_object(root) ? json_object_get(root, "to") : NULL;
    size_t n = json_is_string(v) ? json_string_length(v) : 0;
    int rc = 0;
    if (!json_is_object(root))
        rc = S_BAD(err, "the body must be a JSON object {\"to\": NODE_ID}");
    else if (!json_is_string(v))
        rc = S_BAD(err, "\"to\" must be a string: a NODE_ID in PEERS");
    else if (n == 0 || n >= to_size ||
             memchr(json_string_value(v), 0, n) != NULL)
        rc = S_BAD(err, "\"to\" must be a NODE_ID of 1 to %zu bytes",
                   to_size - 1);
    else
        memcpy(to, json_string_value(v), n + 1);
    json_decref(root);
    return rc;
}

void qkv_rest_write_free(qkv_rest_write_t *self) {
    if (self == NULL)
        return;
    json_decref(self->root);
    memset(self, 0, sizeof *self);
}

//  ---------------------------------------------------------------------
//  Query strings

//  A parameter's value as found in the query: still percent-encoded.

typedef struct {
    const char *at; /* NULL when the parameter is absent */
    size_t len;
} s_span_t;

static int s_hex(unsigned char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

//  Decodes the byte of span at *i and moves *i past it; -1 on a malformed
//  %-escape ('%' not followed by two hex digits).

static int s_decode_next(const s_span_t *span, size_t *i) {
    unsigned char c = (unsigned char)span->at[*i];
    if (c == '+') {
        *i += 1;
        return ' ';
    }
    if (c != '%') {
        *i += 1;
        return c;
    }
    if (span->len - *i < 3)
        return -1;
    int hi = s_hex((unsigned char)span->at[*i + 1]);
    int lo = s_hex((unsigned char)span->at[*i + 2]);
    if (hi < 0 || lo < 0)
        return -1;
    *i += 3;
    return hi << 4 | lo;
}

//  Splits query into name=value pairs and finds the named ones (a pair
//  without '=' has an empty value). Answers 400 for a name seen twice.

static int s_find_params(const char *query, size_t len,
                         const char *const *names, s_span_t *spans,
                         size_t count, qkv_rest_error_t *err) {
    size_t at = 0;
    while (at < len) {
        const char *pair = query + at;
        const char *amp = memchr(pair, '&', len - at);
        size_t pair_len = amp ? (size_t)(amp - pair) : len - at;
        const char *eq = memchr(pair, '=', pair_len);
        size_t name_len = eq ? (size_t)(eq - pair) : pair_len;
        for (size_t k = 0; k < count; k++) {
            if (strlen(names[k]) != name_len ||
                memcmp(names[k], pair, name_len) != 0)
                continue;
            if (spans[k].at != NULL)
                return S_BAD(err, "%s given more than once", names[k]);
            spans[k].at = eq ? eq + 1 : pair + pair_len;
            spans[k].len = eq ? pair_len - name_len - 1 : 0;
        }
        at += pair_len + 1;
    }
    return 0;
}

//  Decodes an optional whole number from 0 to max: leaves *v alone when
//  absent, else sets it or answers 400.

static int s_query_u64(const s_span_t *span, const char *name, uint64_t max,
                       uint64_t *v, qkv_rest_error_t *err) {
    if (span->at == NULL)
        return 0;
    uint64_t n = 0;
    bool ok = span->len > 0;
    for (size_t i = 0; ok && i < span->len;) {
        int c = s_decode_next(span, &i);
        ok = c >= '0' && c <= '9' && n <= (max - (uint64_t)(c - '0')) / 10;
        if (ok)
            n = n * 10 + (uint64_t)(c - '0');
    }
    if (!ok)
        return S_BAD(err, "%s must be a whole number from 0 to %llu", name,
                     (unsigned long long)max);
    *v = n;
    return 0;
}

//  Decodes the key into buf (cap bytes): answers 400 for a malformed
//  %-escape, 413 past max or cap, and sets *key_len.

static int s_query_key(const s_span_t *span, size_t max, char *buf, size_t cap,
                       size_t *key_len, qkv_rest_error_t *err) {
    size_t n = 0;
    for (size_t i = 0; i < span->len; n++) {
        int c = s_decode_next(span, &i);
        if (c < 0)
            return S_BAD(err, "key has a malformed %%-escape; use %%XX with "
                              "two hex digits");
        if (n < cap)
            buf[n] = (char)c;
    }
    if (n > max || n > cap)
        return S_LARGE(err, "key is longer than %zu bytes (MAX_KEY_BYTES)",
                       max);
    if (n == 0)
        return S_BAD(err, "key must not be empty");
    *key_len = n;
    return 0;
}

int qkv_rest_parse_query(const char *query, size_t len, bool want_key,
                         const qkv_rest_limits_t *limits, char *key_buf,
                         size_t key_cap, qkv_rest_query_t *out,
                         qkv_rest_error_t *err) {
    static const char *const names[] = {"key", "min_index", "wait_ms"};
    s_span_t spans[3] = {{NULL, 0}, {NULL, 0}, {NULL, 0}};

    memset(out, 0, sizeof *out);
    size_t first = want_key ? 0 : 1; /* without a key, "key" is ignored */
    if (s_find_params(query, len, names + first, spans + first, 3 - first,
                      err) != 0)
        return -1;
    if (want_key) {
        if (spans[0].at == NULL)
            return S_BAD(err, "missing key parameter: use ?key=K");
        if (s_query_key(&spans[0], limits->max_key_bytes, key_buf, key_cap,
                        &out->key_len, err) != 0)
            return -1;
    }
    if (s_query_u64(&spans[1], "min_index", UINT64_MAX, &out->min_index, err) !=
            0 ||
        s_query_u64(&spans[2], "wait_ms", QKV_REST_MAX_WAIT_MS, &out->wait_ms,
                    err) != 0)
        return -1;
    return 0;
}
