/*  fuzz_rest.c - libFuzzer target: the REST API's pure parsers
    (gateway/include/qkv_rest.h): qkv_rest_parse_write (bodies of /put,
    /delete, /reset), qkv_rest_parse_transfer (/admin/transfer-leader),
    qkv_rest_parse_query (/get, /dump query strings), and access control:
    qkv_rest_tokens_parse (HTTP_TOKENS_FILE) and qkv_rest_authorize (the
    Authorization header).

    The first input byte picks the parser and the limits:
      bits 0-2: 0 put, 1 delete, 2 reset, 3 transfer, 4 query with key,
                5 query without key, 6 tokens file, 7 Authorization
      bits 3-4: limits (key bytes / key buffer or NODE_ID room); for 7,
                what the route needs (none, read, write; 3: no tokens
                file)
    the rest is the body, query string, file or header. Any bytes get an
    answer (0, or -1 with a 400, 413 or 503 and a message; a verdict);
    what is accepted is within the limits, and goes back to text (JSON
    through jansson, a percent-encoded query, a tokens file) and parses
    again the same.

    Seeds: corpus/fuzz_rest/; fuzz_rest.dict holds the member names and
    JSON pieces.
*/
#include "fuzz.h"
#include "qkv_rest.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Limits by bits 3-4 of the first byte. */
static const struct {
    size_t max_key;   /* MAX_KEY_BYTES */
    size_t max_value; /* MAX_VALUE_BYTES */
    size_t key_cap;   /* the query's key buffer; transfer: NODE_ID room */
} s_limits[4] = {
    {4096, 1 << 20, 4096}, {16, 64, 64}, {4096, 1 << 20, 8}, {1, 1, 1}};

static void s_check_error(const qkv_rest_error_t *err) {
    FUZZ_CHECK(err->http == 400 || err->http == 413 || err->http == 503);
    FUZZ_CHECK(err->status != NULL);
    FUZZ_CHECK(memchr(err->message, '\0', sizeof(err->message)) != NULL &&
               err->message[0] != '\0');
}

/*  ---------------------------------------------------------------------
    Write bodies */

/* The write as a JSON body, or NULL when out of memory (free it). */
static char *s_body(const qkv_write_t *w, size_t *len) {
    json_t *o = json_object();
    if (!o)
        return NULL;
    int rc = 0;
    if (w->op != QKV_OP_RESET)
        rc |= json_object_set_new(o, "key", json_stringn(w->key, w->key_len));
    if (w->op == QKV_OP_PUT)
        rc |= json_object_set_new(o, "value",
                                  json_stringn(w->value, w->value_len));
    if (w->client_id) {
        rc |= json_object_set_new(o, "client_id",
                                  json_integer((json_int_t)w->client_id));
        rc |= json_object_set_new(o, "client_seq",
                                  json_integer((json_int_t)w->client_seq));
    }
    char *text = rc == 0 ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    *len = text ? strlen(text) : 0;
    return text;
}

static void s_write(const char *body, size_t len, qkv_op_t op,
                    const qkv_rest_limits_t *limits) {
    qkv_rest_write_t w;
    qkv_rest_error_t err;
    int rc = qkv_rest_parse_write(body, len, op, limits, &w, &err);
    FUZZ_CHECK(rc == 0 || rc == -1);
    if (rc != 0) {
        s_check_error(&err);
        FUZZ_CHECK(w.root == NULL);
        return;
    }
    const qkv_write_t *x = &w.write;
    FUZZ_CHECK(x->op == op);
    FUZZ_CHECK((x->client_id == 0) == (x->client_seq == 0) &&
               x->client_id <= QKV_REST_MAX_CLIENT_INT &&
               x->client_seq <= QKV_REST_MAX_CLIENT_INT);
    if (op == QKV_OP_RESET) {
        FUZZ_CHECK(x->key && x->key_len == 0 && x->value == NULL &&
                   x->value_len == 0);
    } else {
        FUZZ_CHECK(x->key && x->key_len >= 1 &&
                   x->key_len <= limits->max_key_bytes);
        FUZZ_CHECK(op == QKV_OP_PUT ? x->value != NULL
                                    : x->value == NULL && x->value_len == 0);
        FUZZ_CHECK(x->value_len <= limits->max_value_bytes);
    }
    /* written out again by jansson, it parses to the same write */
    size_t again_len = 0;
    char *again = s_body(x, &again_len);
    if (again) {
        qkv_rest_write_t w2;
        FUZZ_CHECK(
            qkv_rest_parse_write(again, again_len, op, limits, &w2, &err) == 0);
        const qkv_write_t *y = &w2.write;
        FUZZ_CHECK(
            y->key_len == x->key_len && fuzz_same(y->key, x->key, x->key_len) &&
            y->value_len == x->value_len &&
            fuzz_same(y->value, x->value, x->value_len) &&
            y->client_id == x->client_id && y->client_seq == x->client_seq);
        qkv_rest_write_free(&w2);
        free(again);
    }
    qkv_rest_write_free(&w);
    qkv_rest_write_free(&w); /* safe twice */
    FUZZ_CHECK(w.root == NULL);
}

static void s_transfer(const char *body, size_t len, size_t to_size) {
    char to[4098]; /* to_size is at most 4097; one guard byte */
    qkv_rest_error_t err;
    memset(to, 0x5a, sizeof(to));
    int rc = qkv_rest_parse_transfer(body, len, to, to_size, &err);
    FUZZ_CHECK(rc == 0 || rc == -1);
    if (rc != 0) {
        s_check_error(&err);
        return;
    }
    size_t n = strnlen(to, to_size);
    FUZZ_CHECK(n >= 1 && n < to_size);
    FUZZ_CHECK((unsigned char)to[to_size] == 0x5a); /* nothing past it */
}

/*  ---------------------------------------------------------------------
    Access control */

/* The tokens file of mode 7 (the seeds use these tokens). */
#define S_READ_TOKEN "read-token-0123456789"
#define S_WRITE_TOKEN "write-token-0123456789abcdef"
static qkv_rest_tokens_t s_tokens;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    static const char text[] = "# the fuzzer's tokens\n"
                               "read " S_READ_TOKEN "\n"
                               "write\t" S_WRITE_TOKEN "\r\n";
    size_t line = 0;
    char why[256];
    FUZZ_CHECK(qkv_rest_tokens_parse(text, sizeof(text) - 1, &s_tokens, &line,
                                     why, sizeof(why)) == 0);
    FUZZ_CHECK(s_tokens.count == 2);
    return 0;
}

static void s_tokens_file(const char *text, size_t len) {
    qkv_rest_tokens_t t;
    size_t line = 12345;
    char why[256];
    memset(why, 0x5a, sizeof(why));
    int rc = qkv_rest_tokens_parse(text, len, &t, &line, why, sizeof(why));
    FUZZ_CHECK(rc == 0 || rc == -1);
    if (rc != 0) {
        FUZZ_CHECK(t.items == NULL && t.count == 0);
        FUZZ_CHECK(memchr(why, '\0', sizeof(why)) != NULL && why[0] != '\0');
        FUZZ_CHECK(line <= len + 1);
        qkv_rest_tokens_free(&t);
        return;
    }
    FUZZ_CHECK(line == 0 && t.items && t.count >= 1 &&
               t.count <= QKV_REST_MAX_TOKENS);
    /* each token as documented, found with its role, written out again
       as a file that parses to the same */
    static char again[QKV_REST_MAX_TOKENS * (QKV_REST_TOKEN_MAX + 8)];
    size_t n = 0;
    for (size_t i = 0; i < t.count; i++) {
        const qkv_rest_token_t *k = &t.items[i];
        FUZZ_CHECK(k->len >= QKV_REST_TOKEN_MIN &&
                   k->len <= QKV_REST_TOKEN_MAX);
        FUZZ_CHECK(k->role == QKV_REST_ROLE_READ ||
                   k->role == QKV_REST_ROLE_WRITE);
        for (size_t b = 0; b < k->len; b++)
            FUZZ_CHECK(k->bytes[b] >= 0x21 && k->bytes[b] <= 0x7e);
        for (size_t b = k->len; b < QKV_REST_TOKEN_MAX; b++)
            FUZZ_CHECK(k->bytes[b] == 0);
        FUZZ_CHECK(qkv_rest_tokens_find(&t, (const char *)k->bytes, k->len) ==
                   k->role);
        n += (size_t)snprintf(again + n, sizeof(again) - n, "%s %.*s\n",
                              k->role == QKV_REST_ROLE_READ ? "read" : "write",
                              (int)k->len, (const char *)k->bytes);
    }
    qkv_rest_tokens_t t2;
    FUZZ_CHECK(qkv_rest_tokens_parse(again, n, &t2, &line, why, sizeof(why)) ==
               0);
    FUZZ_CHECK(t2.count == t.count);
    for (size_t i = 0; i < t.count; i++)
        FUZZ_CHECK(t2.items[i].len == t.items[i].len &&
                   t2.items[i].role == t.items[i].role &&
                   memcmp(t2.items[i].bytes, t.items[i].bytes,
                          QKV_REST_TOKEN_MAX) == 0);
    qkv_rest_tokens_free(&t2);
    qkv_rest_tokens_free(&t);
    qkv_rest_tokens_free(&t); /* safe twice */
    FUZZ_CHECK(t.items == NULL && t.count == 0);
}

static void s_authorize(const char *header, size_t len, unsigned how) {
    /* a header is a C string: it ends at the first NUL */
    char *h = malloc(len + 1);
    if (!h)
        return;
    if (len)
        memcpy(h, header, len);
    h[len] = '\0';
    const qkv_rest_tokens_t *tokens = how == 3 ? NULL : &s_tokens;
    qkv_rest_need_t need =
        how == 3 ? QKV_REST_NEED_WRITE : (qkv_rest_need_t)how;
    qkv_rest_role_t role = (qkv_rest_role_t)77;
    qkv_rest_verdict_t v = qkv_rest_authorize(tokens, need, h, &role);
    int http = qkv_rest_verdict_http(v);
    FUZZ_CHECK(role == QKV_REST_ROLE_NONE || role == QKV_REST_ROLE_READ ||
               role == QKV_REST_ROLE_WRITE);
    FUZZ_CHECK(v == QKV_REST_ALLOWED ? http == 0
               : v == QKV_REST_READ_ONLY
                   ? http == 403
                   : (v == QKV_REST_NO_TOKEN || v == QKV_REST_BAD_TOKEN) &&
                         http == 401);
    if (!tokens)
        FUZZ_CHECK(v == QKV_REST_ALLOWED && role == QKV_REST_ROLE_WRITE);
    if (need == QKV_REST_NEED_NONE)
        FUZZ_CHECK(v == QKV_REST_ALLOWED);
    if (tokens && need != QKV_REST_NEED_NONE && v == QKV_REST_ALLOWED)
        FUZZ_CHECK(role == QKV_REST_ROLE_WRITE ||
                   (role == QKV_REST_ROLE_READ && need == QKV_REST_NEED_READ));
    /* a role is only ever given for one of the file's tokens */
    if (tokens && role != QKV_REST_ROLE_NONE)
        FUZZ_CHECK(strstr(h, role == QKV_REST_ROLE_READ ? S_READ_TOKEN
                                                        : S_WRITE_TOKEN));
    /* the header without its token is never let in */
    qkv_rest_verdict_t none = qkv_rest_authorize(tokens, need, NULL, &role);
    if (tokens && need != QKV_REST_NEED_NONE)
        FUZZ_CHECK(none == QKV_REST_NO_TOKEN && role == QKV_REST_ROLE_NONE);
    free(h);
}

/*  ---------------------------------------------------------------------
    Query strings */

static void s_query(const char *query, size_t len, bool want_key,
                    const qkv_rest_limits_t *limits, size_t key_cap) {
    char key[4097]; /* one guard byte past the largest key_cap */
    qkv_rest_query_t q;
    qkv_rest_error_t err;
    memset(key, 0x5a, sizeof(key));
    int rc = qkv_rest_parse_query(query, len, want_key, limits, key, key_cap,
                                  &q, &err);
    FUZZ_CHECK(rc == 0 || rc == -1);
    FUZZ_CHECK((unsigned char)key[key_cap] == 0x5a); /* nothing past it */
    if (rc != 0) {
        s_check_error(&err);
        return;
    }
    FUZZ_CHECK(q.wait_ms <= QKV_REST_MAX_WAIT_MS);
    if (!want_key) {
        FUZZ_CHECK(q.key_len == 0);
        return;
    }
    FUZZ_CHECK(q.key_len >= 1 && q.key_len <= len &&
               q.key_len <= limits->max_key_bytes && q.key_len <= key_cap);
    /* percent-encoded again, it parses to the same */
    static char again[3 * 4096 + 128];
    size_t n = 0;
    n += (size_t)snprintf(again + n, sizeof(again) - n, "key=");
    for (size_t i = 0; i < q.key_len; i++)
        n += (size_t)snprintf(again + n, sizeof(again) - n, "%%%02X",
                              (unsigned char)key[i]);
    n += (size_t)snprintf(
        again + n, sizeof(again) - n, "&min_index=%llu&wait_ms=%llu",
        (unsigned long long)q.min_index, (unsigned long long)q.wait_ms);
    char key2[4096];
    qkv_rest_query_t q2;
    FUZZ_CHECK(qkv_rest_parse_query(again, n, true, limits, key2, key_cap, &q2,
                                    &err) == 0);
    FUZZ_CHECK(q2.key_len == q.key_len && memcmp(key2, key, q.key_len) == 0 &&
               q2.min_index == q.min_index && q2.wait_ms == q.wait_ms);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    unsigned mode = data[0] & 7, lim = (data[0] >> 3) & 3;
    qkv_rest_limits_t limits = {s_limits[lim].max_key, s_limits[lim].max_value};
    /* an exact-size copy: AddressSanitizer sees a read past the end, and
       len 0 passes NULL as a caller may */
    size_t len = size - 1;
    char *text = len ? malloc(len) : NULL;
    if (len && !text)
        return 0;
    if (len)
        memcpy(text, data + 1, len);
    switch (mode) {
    case 0:
        s_write(text, len, QKV_OP_PUT, &limits);
        break;
    case 1:
        s_write(text, len, QKV_OP_DELETE, &limits);
        break;
    case 2:
        s_write(text, len, QKV_OP_RESET, &limits);
        break;
    case 3:
        s_transfer(text, len, s_limits[lim].key_cap + 1);
        break;
    case 4:
    case 5:
        s_query(text, len, mode == 4, &limits, s_limits[lim].key_cap);
        break;
    case 6:
        s_tokens_file(text, len);
        break;
    case 7:
        s_authorize(text, len, lim);
        break;
    }
    free(text);
    return 0;
}
