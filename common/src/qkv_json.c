/*  qkv_json.c - the gateway's JSON writer: escapes any bytes into a valid
    JSON string and formats the few value types the REST API sends.

    Keys and values are bytes with a length. Bytes that are safe in a JSON
    string are copied in runs; '"', '\\' and control characters (including
    NUL) are escaped; every ill-formed UTF-8 sequence (overlong forms,
    surrogates, code points above U+10FFFF, stray or missing continuation
    bytes) is replaced by one \ufffd per maximal ill-formed subpart, as the
    Unicode standard recommends.
*/
#include "qkv_json.h"
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

//  ---------------------------------------------------------------------
//  UTF-8 validation

//  Looks at the sequence that starts at p (n > 0 bytes available) and
//  returns how many bytes it spans. Sets *valid when they form one
//  well-formed character; otherwise the bytes returned are a maximal
//  ill-formed subpart (at least one byte) to be replaced as a whole.

static size_t s_utf8_sequence(const unsigned char *p, size_t n, bool *valid) {
    unsigned char lead = p[0];
    unsigned char low = 0x80, high = 0xBF;
    size_t need;

    if (lead < 0x80) {
        *valid = true;
        return 1;
    }
    if (lead >= 0xC2 && lead <= 0xDF)
        need = 1;
    else if (lead >= 0xE0 && lead <= 0xEF) {
        need = 2;
        if (lead == 0xE0)
            low = 0xA0; /* no overlong forms */
        if (lead == 0xED)
            high = 0x9F; /* no surrogates */
    } else if (lead >= 0xF0 && lead <= 0xF4) {
        need = 3;
        if (lead == 0xF0)
            low = 0x90; /* no overlong forms */
        if (lead == 0xF4)
            high = 0x8F; /* nothing above U+10FFFF */
    } else {
        *valid = false; /* continuation byte, C0, C1 or F5..FF */
        return 1;
    }
    size_t used = 1;
    while (used <= need && used < n && p[used] >= low && p[used] <= high) {
        low = 0x80;
        high = 0xBF;
        used++;
    }
    *valid = used == need + 1;
    return used;
}

//  ---------------------------------------------------------------------
//  String escaping

//  True for a byte that goes into a JSON string as it is.

static inline bool s_plain_ascii(unsigned char c) {
    return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}

//  Appends the escape for an ASCII byte that is not plain.

static int s_escape_ascii(qkv_buf_t *buf, unsigned char c) {
    static const char hex[] = "0123456789abcdef";
    char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0x0F]};

    switch (c) {
    case '"':
        return qkv_buf_append(buf, "\\\"", 2);
    case '\\':
        return qkv_buf_append(buf, "\\\\", 2);
    case '\b':
        return qkv_buf_append(buf, "\\b", 2);
    case '\f':
        return qkv_buf_append(buf, "\\f", 2);
    case '\n':
        return qkv_buf_append(buf, "\\n", 2);
    case '\r':
        return qkv_buf_append(buf, "\\r", 2);
    case '\t':
        return qkv_buf_append(buf, "\\t", 2);
    default:
        return qkv_buf_append(buf, esc, sizeof esc);
    }
}

int qkv_json_string(qkv_buf_t *buf, const char *s, size_t len) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;

    //  Room for the common case (nothing to escape) in one go
    if (len < SIZE_MAX - 2)
        qkv_buf_reserve(buf, len + 2);
    qkv_buf_append(buf, "\"", 1);
    while (i < len) {
        size_t run = i;
        while (run < len && s_plain_ascii(p[run]))
            run++;
        if (run > i)
            qkv_buf_append(buf, p + i, run - i);
        i = run;
        if (i == len)
            break;
        if (p[i] < 0x80) {
            s_escape_ascii(buf, p[i]);
            i++;
            continue;
        }
        bool valid;
        size_t used = s_utf8_sequence(p + i, len - i, &valid);
        if (valid)
            qkv_buf_append(buf, p + i, used);
        else
            qkv_buf_append(buf, "\\ufffd", 6);
        i += used;
    }
    qkv_buf_append(buf, "\"", 1);
    return buf->failed ? -1 : 0;
}

//  ---------------------------------------------------------------------
//  Structure and members

int qkv_json_char(qkv_buf_t *buf, char c) {
    return qkv_buf_append(buf, &c, 1);
}

int qkv_json_sep(qkv_buf_t *buf) {
    if (buf->size == 0 || buf->data == NULL)
        return buf->failed ? -1 : 0;
    char last = buf->data[buf->size - 1];
    if (last == '{' || last == '[' || last == ':')
        return 0;
    return qkv_buf_append(buf, ",", 1);
}

int qkv_json_name(qkv_buf_t *buf, const char *name) {
    qkv_json_sep(buf);
    qkv_json_string(buf, name, strlen(name));
    qkv_buf_append(buf, ":", 1);
    return buf->failed ? -1 : 0;
}

int qkv_json_member_str(qkv_buf_t *buf, const char *name, const char *s,
                        size_t len) {
    qkv_json_name(buf, name);
    return qkv_json_string(buf, s, len);
}

int qkv_json_member_cstr(qkv_buf_t *buf, const char *name, const char *s) {
    return qkv_json_member_str(buf, name, s, strlen(s));
}

int qkv_json_member_u64(qkv_buf_t *buf, const char *name, uint64_t value) {
    char text[24];
    int n = snprintf(text, sizeof text, "%" PRIu64, value);

    qkv_json_name(buf, name);
    return qkv_buf_append(buf, text, (size_t)n);
}

int qkv_json_member_bool(qkv_buf_t *buf, const char *name, bool value) {
    qkv_json_name(buf, name);
    if (value)
        return qkv_buf_append(buf, "true", 4);
    return qkv_buf_append(buf, "false", 5);
}

int qkv_json_member_seconds(qkv_buf_t *buf, const char *name,
                            int64_t microseconds) {
    char text[32];
    if (microseconds < 0)
        microseconds = 0;
    int n = snprintf(text, sizeof text, "%" PRId64 ".%06" PRId64,
                     microseconds / 1000000, microseconds % 1000000);

    qkv_json_name(buf, name);
    return qkv_buf_append(buf, text, (size_t)n);
}
