/*  qkv_say.h - the one logging function: a line on stderr with the time,
    the node id and a level. (The replicated log owns the name qkv_log.)
*/
#ifndef QKV_SAY_H
#define QKV_SAY_H

/* Sets the id every line is prefixed with (copied); "qkv" until set. */
void qkv_say_set_id(const char *id);

/* Writes one line to stderr: time, id, level, message. Thread-safe. */
void qkv_say(const char *level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define qkv_info(...) qkv_say("info", __VA_ARGS__)
#define qkv_warn(...) qkv_say("warn", __VA_ARGS__)
#define qkv_error(...) qkv_say("error", __VA_ARGS__)

#endif
