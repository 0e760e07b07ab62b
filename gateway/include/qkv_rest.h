/*  qkv_rest.h - the REST API's request parsing as pure functions: a body
    or a query string in, a parsed request or an error out; and access
    control: the tokens file's text in, a table out, and the decision
    (route and Authorization header in, allowed, 401 or 403 out).

    No I/O, no civetweb, no shared state: the civetweb glue (qkv_gateway.c)
    reads the bytes and calls these, and tests/unit/test_rest.c runs them
    on good and hostile input without a server. Every input is read within
    the length given (NUL bytes included) and any bytes get an answer.
    Routes, fields and status words are those of DESIGN.md ("The REST
    API", "Errors, one table").
*/
#ifndef QKV_REST_H
#define QKV_REST_H

#include "qkv_node.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Largest client_id and client_seq: 2^53 - 1, the largest integer every
   JSON implementation holds exactly. The smallest is 1. */
#define QKV_REST_MAX_CLIENT_INT 9007199254740991ULL

/* Largest wait_ms a read takes. */
#define QKV_REST_MAX_WAIT_MS 60000

/* Why a request was refused. */
typedef struct {
    int http;           /* 400, 413; 503 when out of memory */
    const char *status; /* the wire word (static): "bad_request",
                           "too_large", "unavailable" */
    char message[256];  /* for people; names the field at fault */
} qkv_rest_error_t;

/* The node's size limits. */
typedef struct {
    size_t max_key_bytes;   /* MAX_KEY_BYTES */
    size_t max_value_bytes; /* MAX_VALUE_BYTES */
} qkv_rest_limits_t;

struct json_t; /* jansson's; only gateway/src includes jansson.h */

/* A parsed write body. */
typedef struct {
    qkv_write_t write;   /* op, key, value, client_id, client_seq; key and
                            value point into root ("" and NULL for a
                            RESET, NULL/0 value for a DELETE) */
    struct json_t *root; /* owned parse tree; NULL when there is none */
} qkv_rest_write_t;

/* Parses the body of POST /put, /write (op QKV_OP_PUT: {"key": string,
   "value": string}), /delete (QKV_OP_DELETE: {"key": string}) or /reset
   (QKV_OP_RESET: an empty body or a JSON object). Any of them may carry
   "client_id" and "client_seq", both or neither, each a JSON integer from
   1 to QKV_REST_MAX_CLIENT_INT; untagged writes have both 0. Members not
   named here are ignored; a member given twice is refused. Keys and
   values may hold NUL bytes (\u0000); keys are not empty.

   body need not be NUL-terminated and may be NULL when len is 0. Returns
   0 with out filled: release it with qkv_rest_write_free. Returns -1 with
   err filled (400 bad_request; 413 too_large for a key over
   max_key_bytes or a value over max_value_bytes, naming MAX_KEY_BYTES or
   MAX_VALUE_BYTES; 503 unavailable when out of memory) and out holding
   nothing to free. */
int qkv_rest_parse_write(const char *body, size_t len, qkv_op_t op,
                         const qkv_rest_limits_t *limits, qkv_rest_write_t *out,
                         qkv_rest_error_t *err);

/* Frees the parse tree and zeroes self; safe on NULL and twice. */
void qkv_rest_write_free(qkv_rest_write_t *self);

/* Parses the body of POST /admin/transfer-leader: {"to": string}, a
   NODE_ID of 1 to to_size - 1 bytes without NUL (other members ignored,
   a member given twice refused). Returns 0 with to filled, or -1 with
   err filled (400 bad_request). */
int qkv_rest_parse_transfer(const char *body, size_t len, char *to,
                            size_t to_size, qkv_rest_error_t *err);

/* A parsed query string. */
typedef struct {
    size_t key_len;     /* decoded key bytes in the caller's key_buf */
    uint64_t min_index; /* 0 when absent */
    uint64_t wait_ms;   /* 0 when absent; at most QKV_REST_MAX_WAIT_MS */
} qkv_rest_query_t;

/* Parses the query string of GET /get, /read (want_key true: key=K
   required) or /dump (want_key false: key is not looked at): key,
   min_index (0 to 2^64 - 1) and wait_ms (0 to QKV_REST_MAX_WAIT_MS) as
   decimal whole numbers. Parameters are '&'-separated name=value pairs
   matched by exact name; values are percent-decoded ("%XX", '+' is a
   space). Other parameters are ignored; one of these given twice, a
   malformed %-escape in one of them, a missing or empty key, or a number
   that is not a whole number in range is 400 bad_request; a key longer
   than max_key_bytes, or than key_cap, is 413 too_large.

   query need not be NUL-terminated and may be NULL when len is 0. The
   decoded key (any bytes, NUL included) goes to key_buf, which holds
   key_cap bytes (unused when want_key is false); a decoded key is never
   longer than len. Returns 0 with out filled, or -1 with err filled. */
int qkv_rest_parse_query(const char *query, size_t len, bool want_key,
                         const qkv_rest_limits_t *limits, char *key_buf,
                         size_t key_cap, qkv_rest_query_t *out,
                         qkv_rest_error_t *err);

/*  ---------------------------------------------------------------------
    Access control: bearer tokens (HTTP_TOKENS_FILE) */

/* Shortest and longest token, in characters. */
#define QKV_REST_TOKEN_MIN 16
#define QKV_REST_TOKEN_MAX 256

/* Most tokens one file may list (each request is compared with all). */
#define QKV_REST_MAX_TOKENS 128

/* What a token allows; write implies read (the bits say so). */
typedef enum {
    QKV_REST_ROLE_NONE = 0,  /* no token, or one not in the file */
    QKV_REST_ROLE_READ = 1,  /* "read TOKEN" */
    QKV_REST_ROLE_WRITE = 3, /* "write TOKEN" */
} qkv_rest_role_t;

/* What a route needs. */
typedef enum {
    QKV_REST_NEED_NONE,  /* GET /health: open (less is shown without a
                            read token) */
    QKV_REST_NEED_READ,  /* GET /get, /read, /metrics */
    QKV_REST_NEED_WRITE, /* writes, /reset, /dump, /admin/... */
} qkv_rest_need_t;

/* One token, zero-padded to the longest so every comparison reads the
   same number of bytes. */
typedef struct {
    unsigned char bytes[QKV_REST_TOKEN_MAX];
    size_t len;
    qkv_rest_role_t role;
} qkv_rest_token_t;

/* The tokens of a file. */
typedef struct {
    qkv_rest_token_t *items; /* owned; count entries */
    size_t count;
} qkv_rest_tokens_t;

/* Parses the text of a tokens file: one token per line, "read TOKEN" or
   "write TOKEN" (blanks and tabs around and between the two words, a
   trailing CR ignored), blank lines and lines whose first non-blank
   character is '#'. A token is QKV_REST_TOKEN_MIN to QKV_REST_TOKEN_MAX
   printable ASCII characters without spaces. A file without a token, a
   token listed twice, more than QKV_REST_MAX_TOKENS tokens, a NUL byte or
   anything else on a line is refused.

   text need not be NUL-terminated and may be NULL when len is 0. Returns
   0 with out filled (release it with qkv_rest_tokens_free); or -1 with
   out empty, *line set to the line at fault (from 1; 0 when the file as
   a whole is: no token) and why (why_size bytes) saying what is wrong.
   No message ever quotes a token or any other text of the file. */
int qkv_rest_tokens_parse(const char *text, size_t len, qkv_rest_tokens_t *out,
                          size_t *line, char *why, size_t why_size);

/* Wipes and frees the tokens, and zeroes self; safe on NULL and twice. */
void qkv_rest_tokens_free(qkv_rest_tokens_t *self);

/* The role of token (len bytes) in tokens: compared with every token, in
   time that depends on the number of tokens and nothing else (no early
   exit on the first byte that differs, nor on a match). */
qkv_rest_role_t qkv_rest_tokens_find(const qkv_rest_tokens_t *tokens,
                                     const char *token, size_t len);

/* Why a request was let in or not. */
typedef enum {
    QKV_REST_ALLOWED,   /* go on */
    QKV_REST_NO_TOKEN,  /* 401: no "Authorization: Bearer" header */
    QKV_REST_BAD_TOKEN, /* 401: a token not in the file, or a header
                           that is not "Bearer TOKEN" */
    QKV_REST_READ_ONLY, /* 403: a read token on a write route */
} qkv_rest_verdict_t;

/* Decides a request: tokens (NULL: no HTTP_TOKENS_FILE, everything is
   allowed with QKV_REST_ROLE_WRITE), what its route needs and its
   Authorization header (NULL when absent). The scheme "Bearer" is matched
   in any case and followed by blanks, the token, and optional trailing
   blanks. *role gets the role of the token given (QKV_REST_ROLE_NONE
   without a valid one; /health uses it to choose what to show). Routes
   of QKV_REST_NEED_NONE are always allowed. Returns the verdict; the
   HTTP status is qkv_rest_verdict_http. */
qkv_rest_verdict_t qkv_rest_authorize(const qkv_rest_tokens_t *tokens,
                                      qkv_rest_need_t need,
                                      const char *authorization,
                                      qkv_rest_role_t *role);

/* 0 for QKV_REST_ALLOWED, 401 or 403. */
int qkv_rest_verdict_http(qkv_rest_verdict_t verdict);

#endif
