/*  fuzz_config.c - libFuzzer target: the node's settings
    (node/include/qkv_config.h, qkv_config_parse) from a hostile
    environment and command line.

    The input is text, one item a line:
      NAME=VALUE   an environment variable (the first of a name counts)
      -...         a command-line argument (--port=1, --port, -h)
      @WORD        a bare argument (the value of "--port 1" is "@1")
    other lines are ignored; a NUL ends a line's string early. The
    process environment never counts: getenv is a function over the
    table. Every input is answered 0, 1 (--help) or -1 with a message,
    and a parse that succeeds keeps the documented bounds.
    The same bytes also go, whole, to the CLIENT_KEYS file parser
    (node/include/qkv_curve.h, qkv_client_keys_parse): a count within the
    room given, or -1 with a message.

    Seeds: corpus/fuzz_config/ (the README's setups: static roles,
    PEERS, every setting); fuzz_config.dict holds the names and flags.
*/
#include "fuzz.h"
#include "qkv_config.h"
#include "qkv_curve.h"

#include <stdlib.h>
#include <string.h>

#define S_MAX_ITEMS 64

typedef struct {
    char *name, *value;
} s_env_t;

static s_env_t s_env[S_MAX_ITEMS];
static size_t s_env_count;

static const char *s_getenv(const char *name) {
    for (size_t i = 0; i < s_env_count; i++)
        if (strcmp(s_env[i].name, name) == 0)
            return s_env[i].value;
    return NULL;
}

/* Parses the table and argv; checks what came back. Returns the result
   and leaves the message in err. */
static int s_parse(int argc, char **argv, char *err, size_t err_size) {
    qkv_config_t cfg;
    memset(&cfg, 0, sizeof(cfg));
    err[0] = '\0';
    int rc = qkv_config_parse(&cfg, argc, argv, s_getenv, err, err_size);
    FUZZ_CHECK(rc == 0 || rc == 1 || rc == -1);
    FUZZ_CHECK(memchr(err, '\0', err_size) != NULL);
    if (rc == -1)
        FUZZ_CHECK(err[0] != '\0');
    if (rc == 0) {
        FUZZ_CHECK(cfg.follower_count <= QKV_MAX_FOLLOWERS);
        for (size_t i = 0; i < cfg.follower_count; i++)
            FUZZ_CHECK(cfg.followers[i] != NULL);
        /* a follower of the static form ignores WRITE_QUORUM */
        FUZZ_CHECK(cfg.write_quorum >= 0 &&
                   cfg.write_quorum <= QKV_MAX_FOLLOWERS);
        if (cfg.role == QKV_ROLE_LEADER || cfg.peers)
            FUZZ_CHECK((size_t)cfg.write_quorum <= cfg.follower_count);
        FUZZ_CHECK(cfg.port > 0 && cfg.port <= 65535);
        FUZZ_CHECK(cfg.min_delay_us >= 0 &&
                   cfg.min_delay_us <= cfg.max_delay_us);
        FUZZ_CHECK(cfg.fsync >= 0 && cfg.fsync <= 2);
        FUZZ_CHECK(cfg.commit_notify_ms >= 0 && cfg.commit_notify_ms <= 1000);
        FUZZ_CHECK(cfg.cpu_count == (size_t)CPU_COUNT(&cfg.cpu_set));
        FUZZ_CHECK(memchr(cfg.node_id, '\0', sizeof(cfg.node_id)) &&
                   memchr(cfg.bind, '\0', sizeof(cfg.bind)) &&
                   memchr(cfg.leader_url, '\0', sizeof(cfg.leader_url)) &&
                   memchr(cfg.data_dir, '\0', sizeof(cfg.data_dir)));
        if (cfg.peers) {
            FUZZ_CHECK(cfg.peer_count >= 1 && cfg.peer_count <= QKV_MAX_NODES &&
                       cfg.self < cfg.peer_count &&
                       cfg.follower_count == cfg.peer_count - 1);
            for (size_t i = 0; i < cfg.follower_count; i++) {
                const qkv_peer_t *p = qkv_config_peer(&cfg, i);
                FUZZ_CHECK(p != &cfg.peers[cfg.self]);
                FUZZ_CHECK(memchr(p->id, '\0', sizeof(p->id)) && p->id[0]);
            }
        } else {
            FUZZ_CHECK(cfg.peer_count == 0);
        }
    }
    qkv_config_clear(&cfg);
    return rc;
}

/* The CLIENT_KEYS parser over the raw bytes. */
static void s_client_keys(const uint8_t *data, size_t size) {
    qkv_client_key_t keys[8];
    char err[256] = "";
    int n = qkv_client_keys_parse((const char *)data, size, keys, 8, err,
                                  sizeof(err));
    FUZZ_CHECK(n >= -1 && n <= 8);
    FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL);
    if (n == -1)
        FUZZ_CHECK(err[0] != '\0');
    for (int i = 0; i < n; i++)
        for (int j = 0; j < i; j++)
            FUZZ_CHECK(memcmp(keys[i].key, keys[j].key, 32) != 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    s_client_keys(data, size);
    /* one NUL-terminated copy, cut into lines in place */
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    char *argv[S_MAX_ITEMS + 2];
    int argc = 0;
    argv[argc++] = "qkv-node";
    s_env_count = 0;
    char *line = text;
    while (line < text + size) {
        char *end = memchr(line, '\n', (size_t)(text + size - line));
        if (end)
            *end = '\0';
        char *eq = strchr(line, '=');
        if (line[0] == '-' && argc <= S_MAX_ITEMS) {
            argv[argc++] = line;
        } else if (line[0] == '@' && argc <= S_MAX_ITEMS) {
            argv[argc++] = line + 1;
        } else if (eq && eq != line && s_env_count < S_MAX_ITEMS) {
            *eq = '\0';
            s_env[s_env_count++] = (s_env_t){line, eq + 1};
        }
        if (!end)
            break;
        line = end + 1;
    }
    argv[argc] = NULL;

    char err[1024];
    s_parse(argc, argv, err, sizeof(err));
    free(text);
    return 0;
}
