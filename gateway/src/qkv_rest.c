/*  qkv_rest.c - the REST API's request parsing as pure functions (see
    qkv_rest.h): write bodies through jansson, query strings by hand.

    Bodies: jansson parses with duplicate members refused and \u0000
    allowed in strings, after a pass that refuses nesting deeper than
    S_MAX_JSON_DEPTH (jansson recurses per level up to its own 2048, which
    overflows a civetweb worker's stack); it refuses invalid UTF-8 and
    integers beyond its json_int_t. Its error codes pick our answer: out of
    memory is 503, the rest 400. Checks run in a fixed order, the first
    failure answers: JSON, object, key, value, client_id, client_seq, the
    pair, empty key, then the sizes (413).

    Queries: one pass splits name=value pairs and remembers where the
    three we know are; each value is then percent-decoded on the fly into
    the caller's buffer (the key) or into a running number (min_index,
    wait_ms), so no length or digit count is ever trusted.

    Tokens: the text of HTTP_TOKENS_FILE is parsed line by line into a
    table of fixed-size entries (the gateway reads the file and checks its
    mode); a token given with a request is compared with every entry over
    the same number of bytes whatever matches, so the time taken says
    nothing of the tokens. No message ever quotes a token.
*/
#include "qkv_rest.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

//  jansson's parser recurses once per level of nesting, up to
//  JSON_PARSER_MAX_DEPTH (2048), but civetweb's workers run on 100 KiB
//  stacks (its default USE_STACK_SIZE, as Debian builds it): a body of
//  about a thousand '[' overflowed one and killed the node. No body we
//  take nests deeper than an object holding arrays, so a pass that skips
//  strings bounds it first. Stray closers stop jansson where they are.

#define S_MAX_JSON_DEPTH 32

static bool s_json_depth_ok(const char *body, size_t len) {
    int depth = 0;
    bool in_string = false;
    for (size_t i = 0; i < len; i++) {
        char c = body[i];
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > S_MAX_JSON_DEPTH)
                return false;
        } else if ((c == ']' || c == '}') && --depth < 0) {
            return true;
        }
    }
    return true;
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
    if (!s_json_depth_ok(body, len))
        return S_BAD(err, "JSON nested deeper than %d levels",
                     S_MAX_JSON_DEPTH);
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
    if (!s_json_depth_ok(body, len))
        return S_BAD(err, "JSON nested deeper than %d levels",
                     S_MAX_JSON_DEPTH);
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

//  ---------------------------------------------------------------------
//  Access control: the tokens file and the decision

static bool s_blank(char c) {
    return c == ' ' || c == '\t';
}

//  Says why a tokens file is refused; returns -1.

static int s_why(char *why, size_t why_size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int s_why(char *why, size_t why_size, const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    vsnprintf(why, why_size, fmt, args);
    va_end(args);
    return -1;
}

//  Parses one line (no '\n', a trailing CR removed) into out, or says
//  why not in why; lines[] holds the line of each token so far.

static int s_token_line(const char *at, size_t len, qkv_rest_tokens_t *out,
                        const size_t *lines, char *why, size_t why_size) {
    size_t i = 0;
    if (memchr(at, '\0', len) != NULL)
        return s_why(why, why_size, "a NUL byte (not a text file?)");
    while (i < len && s_blank(at[i]))
        i++;
    if (i == len || at[i] == '#')
        return 0; /* blank or comment */
    size_t word = i;
    while (i < len && !s_blank(at[i]))
        i++;
    qkv_rest_role_t role = QKV_REST_ROLE_NONE;
    if (i - word == 4 && memcmp(at + word, "read", 4) == 0)
        role = QKV_REST_ROLE_READ;
    else if (i - word == 5 && memcmp(at + word, "write", 5) == 0)
        role = QKV_REST_ROLE_WRITE;
    else
        return s_why(why, why_size, "expected 'read TOKEN' or 'write TOKEN'");
    while (i < len && s_blank(at[i]))
        i++;
    size_t start = i;
    while (i < len && !s_blank(at[i]))
        i++;
    size_t token_len = i - start;
    while (i < len && s_blank(at[i]))
        i++;
    if (token_len == 0)
        return s_why(why, why_size, "no token after '%s'",
                     role == QKV_REST_ROLE_READ ? "read" : "write");
    if (i < len)
        return s_why(why, why_size,
                     "more than two words: a line is 'read TOKEN' or "
                     "'write TOKEN', comments go on lines of their own");
    for (size_t k = start; k < start + token_len; k++)
        if ((unsigned char)at[k] < 0x21 || (unsigned char)at[k] > 0x7E)
            return s_why(why, why_size,
                         "the token holds a character that is not "
                         "printable ASCII");
    if (token_len < QKV_REST_TOKEN_MIN || token_len > QKV_REST_TOKEN_MAX)
        return s_why(why, why_size,
                     "the token is %zu characters; tokens are %d to %d",
                     token_len, QKV_REST_TOKEN_MIN, QKV_REST_TOKEN_MAX);
    for (size_t t = 0; t < out->count; t++)
        if (out->items[t].len == token_len &&
            memcmp(out->items[t].bytes, at + start, token_len) == 0)
            return s_why(why, why_size, "the same token as line %zu", lines[t]);
    if (out->count == QKV_REST_MAX_TOKENS)
        return s_why(why, why_size, "more than %d tokens", QKV_REST_MAX_TOKENS);
    qkv_rest_token_t *token = &out->items[out->count++];
    memcpy(token->bytes, at + start, token_len);
    token->len = token_len;
    token->role = role;
    return 0;
}

int qkv_rest_tokens_parse(const char *text, size_t len, qkv_rest_tokens_t *out,
                          size_t *line, char *why, size_t why_size) {
    size_t lines[QKV_REST_MAX_TOKENS];
    size_t at = 0, n = 0;

    memset(out, 0, sizeof *out);
    *line = 0;
    if (why_size > 0)
        why[0] = '\0';
    /* the most there can be, at once: a grown array would leave copies
       of tokens behind in freed memory */
    out->items = calloc(QKV_REST_MAX_TOKENS, sizeof *out->items);
    if (out->items == NULL)
        return s_why(why, why_size, "out of memory");
    while (at < len) {
        const char *start = text + at;
        const char *nl = memchr(start, '\n', len - at);
        size_t line_len = nl ? (size_t)(nl - start) : len - at;
        at += line_len + 1;
        n++;
        if (line_len > 0 && start[line_len - 1] == '\r')
            line_len--;
        size_t before = out->count;
        if (s_token_line(start, line_len, out, lines, why, why_size) != 0) {
            *line = n;
            qkv_rest_tokens_free(out);
            return -1;
        }
        if (out->count > before)
            lines[before] = n;
    }
    if (out->count == 0) {
        qkv_rest_tokens_free(out);
        return s_why(why, why_size,
                     "no tokens; each line is 'read TOKEN' or 'write TOKEN'");
    }
    return 0;
}

//  memset that the compiler may not drop for a buffer about to die.

static void s_wipe(void *p, size_t len) {
    volatile unsigned char *v = p;
    while (len-- > 0)
        *v++ = 0;
}

void qkv_rest_tokens_free(qkv_rest_tokens_t *self) {
    if (self == NULL)
        return;
    if (self->items != NULL) {
        s_wipe(self->items, QKV_REST_MAX_TOKENS * sizeof *self->items);
        free(self->items);
    }
    memset(self, 0, sizeof *self);
}

//  Constant time: every token is compared over all QKV_REST_TOKEN_MAX
//  bytes, lengths included, by OR-ing differences; a match only changes
//  which bits a mask lets through, never the path taken.

qkv_rest_role_t qkv_rest_tokens_find(const qkv_rest_tokens_t *tokens,
                                     const char *token, size_t len) {
    unsigned char given[QKV_REST_TOKEN_MAX];
    unsigned role = 0;

    if (tokens == NULL || token == NULL || len < QKV_REST_TOKEN_MIN ||
        len > QKV_REST_TOKEN_MAX)
        return QKV_REST_ROLE_NONE; /* the caller's own length: no secret */
    memset(given, 0, sizeof given);
    memcpy(given, token, len);
    for (size_t t = 0; t < tokens->count; t++) {
        const qkv_rest_token_t *item = &tokens->items[t];
        size_t d = item->len ^ len; /* both at most 256: d < 512 */
        unsigned diff = (unsigned)((d & 0xFF) | (d >> 8));
        for (size_t i = 0; i < QKV_REST_TOKEN_MAX; i++)
            diff |= (unsigned)(item->bytes[i] ^ given[i]);
        unsigned equal = ((diff - 1u) >> 8) & 1u; /* diff is 0..255 */
        role |= (unsigned)item->role & (0u - equal);
    }
    s_wipe(given, sizeof given);
    return (qkv_rest_role_t)role;
}

qkv_rest_verdict_t qkv_rest_authorize(const qkv_rest_tokens_t *tokens,
                                      qkv_rest_need_t need,
                                      const char *authorization,
                                      qkv_rest_role_t *role) {
    *role = QKV_REST_ROLE_NONE;
    if (tokens == NULL) {
        *role = QKV_REST_ROLE_WRITE;
        return QKV_REST_ALLOWED;
    }
    bool given = authorization != NULL && authorization[0] != '\0';
    if (given) {
        const char *h = authorization;
        while (s_blank(*h))
            h++;
        if (strncasecmp(h, "Bearer", 6) == 0 && s_blank(h[6])) {
            h += 6;
            while (s_blank(*h))
                h++;
            size_t len = 0;
            while (h[len] != '\0' && !s_blank(h[len]))
                len++;
            size_t end = len;
            while (s_blank(h[end]))
                end++;
            if (h[end] == '\0')
                *role = qkv_rest_tokens_find(tokens, h, len);
        }
    }
    if (need == QKV_REST_NEED_NONE)
        return QKV_REST_ALLOWED;
    if (*role == QKV_REST_ROLE_NONE)
        return given ? QKV_REST_BAD_TOKEN : QKV_REST_NO_TOKEN;
    if (need == QKV_REST_NEED_WRITE && *role != QKV_REST_ROLE_WRITE)
        return QKV_REST_READ_ONLY;
    return QKV_REST_ALLOWED;
}

int qkv_rest_verdict_http(qkv_rest_verdict_t verdict) {
    switch (verdict) {
    case QKV_REST_ALLOWED:
        return 0;
    case QKV_REST_READ_ONLY:
        return 403;
    default:
        return 401;
    }
}
