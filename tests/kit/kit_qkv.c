/*  kit_qkv.c - the test kit's view of the qkv REST API: writes, reads,
    health and dumps as JSON, and the waits cluster suites share (a value
    reaching a node, the leader settling, two dumps becoming equal).
*/
#include "kit.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

json_t *kit_qkv_writen(const char *base, const char *route, const char *key,
                       size_t key_len, const char *value, size_t value_len,
                       long *status, char **location) {
    char url[512];
    snprintf(url, sizeof url, "%s%s", base, route);
    json_t *body = json_object();
    json_object_set_new(body, "key", json_stringn(key, key_len));
    json_object_set_new(body, "value", json_stringn(value, value_len));
    json_t *answer = kit_post_json(url, body, status, location);
    json_decref(body);
    return answer;
}

json_t *kit_qkv_write(const char *base, const char *route, const char *key,
                      const char *value, long *status, char **location) {
    return kit_qkv_writen(base, route, key, strlen(key), value, strlen(value),
                          status, location);
}

json_t *kit_qkv_readn(const char *base, const char *route, const char *key,
                      size_t key_len, long *status) {
    char *escaped = kit_url_escape(key, key_len);
    size_t size = strlen(base) + strlen(route) + strlen(escaped) + 8;
    char *url = malloc(size);
    snprintf(url, size, "%s%s?key=%s", base, route, escaped);
    json_t *answer = kit_get_json(url, status);
    free(url);
    free(escaped);
    return answer;
}

json_t *kit_qkv_read(const char *base, const char *route, const char *key,
                     long *status) {
    return kit_qkv_readn(base, route, key, strlen(key), status);
}

json_t *kit_qkv_health(const char *base, long *status) {
    char url[512];
    snprintf(url, sizeof url, "%s/health", base);
    return kit_get_json(url, status);
}

uint64_t kit_qkv_health_u64(const char *base, const char *field) {
    long status;
    uint64_t v = 0;
    json_t *h = kit_qkv_health(base, &status);
    kit_json_u64(h, field, &v);
    json_decref(h);
    return v;
}

/* Rewrites each \u0000 escape in JSON text as \u2400 (a visible NUL
   symbol): jansson refuses NUL bytes in object keys, and dumps have keys
   with them. Both sides of a comparison get the same rewrite. */
static void s_unnul(char *text, size_t len) {
    size_t slashes = 0;
    for (size_t i = 0; i + 5 < len; i++) {
        if (text[i] == '\\') {
            if (slashes % 2 == 0 && memcmp(text + i + 1, "u0000", 5) == 0) {
                memcpy(text + i + 1, "u2400", 5);
                slashes = 0;
                i += 5;
                continue;
            }
            slashes++;
        } else {
            slashes = 0;
        }
    }
}

json_t *kit_get_dump(const char *url, long *status) {
    kit_resp_t resp;
    *status = 0;
    if (kit_http("GET", url, NULL, 0, &resp) != 0)
        return NULL;
    *status = resp.status;
    s_unnul(resp.body, resp.body_len);
    json_t *json = kit_json_parse(resp.body, resp.body_len);
    if (!json_is_object(json)) {
        fprintf(stderr, "kit: %s is not a JSON object: %.200s\n", url,
                resp.body);
        json_decref(json);
        json = NULL;
    }
    kit_resp_free(&resp);
    return json;
}

json_t *kit_qkv_dump(const char *base, long *status) {
    char url[512];
    snprintf(url, sizeof url, "%s/dump", base);
    return kit_get_dump(url, status);
}

bool kit_qkv_holds(const char *base, const char *key, const char *value,
                   uint64_t seq) {
    long status;
    json_t *answer = kit_qkv_read(base, "/get", key, &status);
    const char *got = kit_json_str(answer, "value");
    uint64_t got_seq = 0;
    bool holds = status == 200 && got && strcmp(got, value) == 0 &&
                 kit_json_u64(answer, "seq", &got_seq) &&
                 (seq == 0 || got_seq == seq);
    json_decref(answer);
    return holds;
}

typedef struct {
    const char *base, *key, *value;
    uint64_t seq;
} s_holds_t;

static bool s_holds(void *arg) {
    const s_holds_t *h = arg;
    return kit_qkv_holds(h->base, h->key, h->value, h->seq);
}

bool kit_qkv_wait_holds(const char *base, const char *key, const char *value,
                        uint64_t seq, int timeout_ms) {
    s_holds_t h = {base, key, value, seq};
    return kit_poll_until(timeout_ms, s_holds, &h);
}

typedef struct {
    const char *leader;
    uint64_t index;
} s_settle_t;

static bool s_settled(void *arg) {
    s_settle_t *s = arg;
    long status;
    json_t *health = kit_qkv_health(s->leader, &status);
    uint64_t last = 0, commit = 1, applied = 2;
    bool ok = status == 200 && kit_json_u64(health, "last_index", &last) &&
              kit_json_u64(health, "commit_index", &commit) &&
              kit_json_u64(health, "applied_index", &applied) &&
              last == commit && commit == applied;
    s->index = last;
    json_decref(health);
    return ok;
}

bool kit_qkv_settled(const char *leader, int timeout_ms, uint64_t *index) {
    s_settle_t s = {leader, 0};
    bool ok = kit_poll_until(timeout_ms, s_settled, &s);
    if (index)
        *index = s.index;
    return ok;
}

/*  ---------------------------------------------------------------------
    Comparing dumps */

typedef struct {
    const char *leader;
    const char *node;
    char why[512]; /* the last difference seen */
} s_same_t;

/* Names the first entry that differs between two entries objects. */
static void s_first_difference(const json_t *a, const json_t *b, char *why,
                               size_t size) {
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)a, key, value) {
        json_t *other = json_object_get(b, key);
        if (!json_equal(value, other)) {
            char *x = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
            char *y = other ? json_dumps(other, JSON_COMPACT | JSON_ENCODE_ANY)
                            : NULL;
            snprintf(why, size, "key \"%.60s\": leader %.80s, node %.80s", key,
                     x ? x : "?", y ? y : "(absent)");
            free(x);
            free(y);
            return;
        }
    }
    json_object_foreach((json_t *)b, key, value) {
        if (!json_object_get(a, key)) {
            snprintf(why, size, "key \"%.60s\" only on the node", key);
            return;
        }
    }
}

static bool s_same_dump(void *arg) {
    s_same_t *s = arg;
    long ls, ns;
    json_t *ld = kit_qkv_dump(s->leader, &ls);
    json_t *nd = kit_qkv_dump(s->node, &ns);
    json_t *le = json_object_get(ld, "entries");
    json_t *ne = json_object_get(nd, "entries");
    uint64_t la = 0, na = 1;
    bool same = false;
    if (ls != 200 || ns != 200 || !json_is_object(le) || !json_is_object(ne)) {
        snprintf(s->why, sizeof s->why, "dump answers %ld and %ld", ls, ns);
    } else if (!kit_json_u64(ld, "applied_index", &la) ||
               !kit_json_u64(nd, "applied_index", &na) || la != na) {
        snprintf(s->why, sizeof s->why, "applied_index: leader %llu, node %llu",
                 (unsigned long long)la, (unsigned long long)na);
    } else if (!json_equal(le, ne)) {
        snprintf(s->why, sizeof s->why, "%zu vs %zu entries; ",
                 json_object_size(le), json_object_size(ne));
        size_t used = strlen(s->why);
        s_first_difference(le, ne, s->why + used, sizeof s->why - used);
    } else {
        same = true;
    }
    json_decref(ld);
    json_decref(nd);
    return same;
}

bool kit_qkv_wait_same_dump(const char *leader, const char *node,
                            int timeout_ms) {
    s_same_t s = {leader, node, ""};
    if (kit_poll_until(timeout_ms, s_same_dump, &s))
        return true;
    fprintf(stderr,
            "\nkit: dump of %s still differs from the leader's "
            "(waited up to %d ms): %s\n",
            node, timeout_ms, s.why);
    return false;
}

/*  ---------------------------------------------------------------------
    Prometheus text */

/* Splits a sample line into name (copied), labels and value. */
static bool s_prom_line(const char *line, size_t len, char *name,
                        size_t name_size, char *labels, size_t labels_size,
                        double *value) {
    size_t n = 0;
    while (n < len && (isalnum((unsigned char)line[n]) || line[n] == '_' ||
                       line[n] == ':'))
        n++;
    if (n == 0 || n >= name_size || isdigit((unsigned char)line[0]))
        return false;
    memcpy(name, line, n);
    name[n] = '\0';
    labels[0] = '\0';
    size_t at = n;
    if (at < len && line[at] == '{') {
        const char *close = memchr(line + at, '}', len - at);
        if (!close || (size_t)(close - line - at) >= labels_size)
            return false;
        size_t l = (size_t)(close - line) - at - 1;
        memcpy(labels, line + at + 1, l);
        labels[l] = '\0';
        at = (size_t)(close - line) + 1;
    }
    if (at >= len || line[at] != ' ')
        return false;
    char text[64];
    size_t vlen = len - at - 1;
    const char *space = memchr(line + at + 1, ' ', vlen); /* timestamp */
    if (space)
        vlen = (size_t)(space - line) - at - 1;
    if (vlen == 0 || vlen >= sizeof text)
        return false;
    memcpy(text, line + at + 1, vlen);
    text[vlen] = '\0';
    char *end;
    *value = strtod(text, &end);
    return *end == '\0';
}

typedef struct {
    char family[128]; /* histogram whose buckets are being read */
    char series[512]; /* their labels other than le */
    double last;      /* last bucket's value */
    bool saw_inf;
    double inf;
} s_hist_t;

/* labels without the le="..." pair and the comma that joined it, so
   {proto="x",le="1"} and {le="1",proto="x"} both give proto="x", the
   labels of the family's _count */
static void s_without_le(const char *labels, char *out, size_t size) {
    const char *le = strstr(labels, "le=\"");
    while (le && le != labels && le[-1] != ',')
        le = strstr(le + 1, "le=\""); /* part of another label's name */
    if (!le) {
        snprintf(out, size, "%s", labels);
        return;
    }
    const char *end = strchr(le + 4, '"');
    end = end ? end + 1 : le + strlen(le);
    const char *start = le;
    if (*end == ',')
        end++;
    else if (start != labels)
        start--; /* the comma before a last le pair */
    snprintf(out, size, "%.*s%s", (int)(start - labels), labels, end);
}

static bool s_prom_bucket(s_hist_t *h, const char *name, const char *labels,
                          double value, char *why, size_t why_size) {
    size_t n = strlen(name) - strlen("_bucket");
    char series[512];
    s_without_le(labels, series, sizeof series);
    if (strncmp(h->family, name, n) != 0 || h->family[n] != '\0' ||
        strcmp(series, h->series) != 0) {
        snprintf(h->family, sizeof h->family, "%.*s", (int)n, name);
        snprintf(h->series, sizeof h->series, "%s", series);
        h->last = 0;
        h->saw_inf = false;
    }
    if (value < h->last) {
        snprintf(why, why_size, "%s: bucket {%s} %g below the one before", name,
                 labels, value);
        return false;
    }
    h->last = value;
    if (strstr(labels, "le=\"+Inf\"")) {
        h->saw_inf = true;
        h->inf = value;
    }
    return true;
}

bool kit_prom_check(const char *text, char *why, size_t why_size) {
    s_hist_t h = {.family = "", .series = ""};
    char name[128], labels[512];
    double value;
    int samples = 0;
    for (const char *line = text; *line;) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        if (len > 0 && line[0] != '#') {
            if (!s_prom_line(line, len, name, sizeof name, labels,
                             sizeof labels, &value)) {
                snprintf(why, why_size, "not a sample line: %.*s",
                         (int)(len < 120 ? len : 120), line);
                return false;
            }
            samples++;
            size_t n = strlen(name);
            if (n > 7 && strcmp(name + n - 7, "_bucket") == 0 &&
                !s_prom_bucket(&h, name, labels, value, why, why_size))
                return false;
            if (n > 6 && strcmp(name + n - 6, "_count") == 0 &&
                strncmp(name, h.family, n - 6) == 0 &&
                h.family[n - 6] == '\0' && strcmp(labels, h.series) == 0) {
                if (!h.saw_inf || h.inf != value) {
                    snprintf(why, why_size, "%s %g but its +Inf bucket %g",
                             name, value, h.saw_inf ? h.inf : -1.0);
                    return false;
                }
            }
        }
        line = nl ? nl + 1 : line + len;
    }
    if (samples == 0) {
        snprintf(why, why_size, "no samples");
        return false;
    }
    return true;
}

bool kit_prom_value(const char *text, const char *name, double *value) {
    char got[128], labels[512], want[128];
    const char *brace = strchr(name, '{');
    size_t name_len = brace ? (size_t)(brace - name) : strlen(name);
    if (name_len >= sizeof want)
        return false;
    memcpy(want, name, name_len);
    want[name_len] = '\0';
    for (const char *line = text; *line;) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        double v;
        if (len > 0 && line[0] != '#' &&
            s_prom_line(line, len, got, sizeof got, labels, sizeof labels,
                        &v) &&
            strcmp(got, want) == 0 &&
            (!brace || (strlen(labels) + 2 == strlen(brace) &&
                        strncmp(brace + 1, labels, strlen(labels)) == 0))) {
            *value = v;
            return true;
        }
        line = nl ? nl + 1 : line + len;
    }
    return false;
}
