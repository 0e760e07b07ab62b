/*  qkv_json.h - the one JSON writer and string escaper of qkv (the REST
    gateway's answers, the qkv tool's --json output).

    Appends JSON text to a qkv_buf_t. Strings are any bytes with a length:
    quotes, backslashes and control characters (NUL included) are escaped
    and every ill-formed UTF-8 sequence becomes \ufffd, one per maximal
    ill-formed subpart as the Unicode standard recommends (so E2 82 gives
    one, E2 41 gives one and then "A"), so the output is valid JSON
    whatever a key or value holds. DEL (0x7F) is not a control character
    in JSON and goes out as it is. Parsing is jansson's job.

    Members are separated automatically: qkv_json_name writes a comma
    unless the buffer ends with '{', '[' or ':' (or is empty), so an object
    is "{", then members, then "}". Every function returns 0, or -1 once
    the buffer failed to grow (the failure sticks in buf->failed, so callers
    may check once at the end).
*/
#ifndef QKV_JSON_H
#define QKV_JSON_H

#include "qkv_buf.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Appends s[0..len) as a quoted JSON string. */
int qkv_json_string(qkv_buf_t *buf, const char *s, size_t len);

/* Appends a comma unless the buffer is empty or ends in '{', '[' or ':'. */
int qkv_json_sep(qkv_buf_t *buf);

/* Appends an optional comma, then "name": ; name is NUL-terminated text
   (escaped like any string). */
int qkv_json_name(qkv_buf_t *buf, const char *name);

/* Object members: "name": followed by the value. */
int qkv_json_member_str(qkv_buf_t *buf, const char *name, const char *s,
                        size_t len);
int qkv_json_member_cstr(qkv_buf_t *buf, const char *name, const char *s);
int qkv_json_member_u64(qkv_buf_t *buf, const char *name, uint64_t value);
int qkv_json_member_bool(qkv_buf_t *buf, const char *name, bool value);
/* A duration in seconds with microsecond precision (negative is 0). */
int qkv_json_member_seconds(qkv_buf_t *buf, const char *name,
                            int64_t microseconds);

/* Appends one byte (a structural character such as '{' or ']'). */
int qkv_json_char(qkv_buf_t *buf, char c);

#endif
