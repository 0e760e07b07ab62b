/*  qkv_cli.c - qkv, the command-line client of a qkv cluster.

    qkv [OPTIONS] COMMAND [ARGS]: put, get, del, dump and health talk to
    one node (-e, QKV_ENDPOINT, or tcp://127.0.0.1:7000) through libqkv;
    check dumps several nodes and compares every follower with the leader.
    Results go to standard output (raw text, or one JSON document with
    --json), messages to standard error. Exit status: 0 success, 1 "not
    found" (get, del) or divergence (check), 2 any error.
*/
#include "qkv_client.h"
#include "qkv_json.h"
#include "qkv_key.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define S_EXIT_OK 0
#define S_EXIT_MISS 1 /* not found, or divergence */
#define S_EXIT_ERROR 2
#define S_DEFAULT_ENDPOINT "tcp://127.0.0.1:7000"
#define S_DEFAULT_WAIT_MS 5000

/* What the command line asked. */
typedef struct {
    const char *endpoint; /* -e, QKV_ENDPOINT or the default */
    int timeout_ms;       /* -t; 0: the library's default */
    bool json;            /* --json */
    bool help;            /* --help */
    uint64_t min_index;   /* get, dump: --min-index */
    bool has_min_index;
    int wait_ms; /* check: --wait-ms */
    bool has_wait_ms;
    const char *key_file;   /* --key, QKV_KEY_FILE: CURVE secret key */
    const char *server_key; /* --server-key, QKV_SERVER_KEY: KEY or FILE */
    char secret[41];        /* read from key_file; "" plain text */
    char server[41];        /* from server_key; "" none */
    char **args;            /* positional arguments after the command */
    int argc;
} s_opts_t;

/*  ---------------------------------------------------------------------
    Help */

static const char *s_main_usage =
    "Usage: qkv [OPTIONS] COMMAND [ARGS]\n"
    "\n"
    "A client of a qkv cluster over its ZeroMQ client port.\n"
    "\n"
    "Commands:\n"
    "  put KEY VALUE      write KEY = VALUE on the leader (VALUE - reads "
    "stdin)\n"
    "  get KEY            print the value of KEY\n"
    "  del KEY            delete KEY\n"
    "  dump               print every entry of the node\n"
    "  health             print the node's health\n"
    "  check ENDPOINT...  compare every follower's entries with the "
    "leader's\n"
    "                     (the node whose health says it leads)\n"
    "  keygen PREFIX      write a CURVE key pair: PREFIX.key (secret, "
    "mode\n"
    "                     0600) and PREFIX.pub; print the public key\n"
    "\n"
    "Options (before or after the command):\n"
    "  -e, --endpoint E   node to talk to, tcp://HOST:PORT; a "
    "comma-separated\n"
    "                     list adds fallbacks (default: $QKV_ENDPOINT, "
    "else\n"
    "                     " S_DEFAULT_ENDPOINT ")\n"
    "  -t, --timeout-ms MS  how long one request may take (default 5000)\n"
    "  -k, --key FILE     CURVE: this client's secret key file (default:\n"
    "                     $QKV_KEY_FILE; none: plain text)\n"
    "  -s, --server-key K CURVE: the nodes' public key, or a .pub file\n"
    "                     (default: $QKV_SERVER_KEY); an endpoint may carry\n"
    "                     its own as tcp://HOST:PORT|key=KEY\n"
    "  -j, --json         print one JSON document\n"
    "  -h, --help         show help (qkv COMMAND --help for a command)\n"
    "\n"
    "Exit status: 0 success, 1 not found (get, del) or divergence "
    "(check),\n"
    "2 any error. Messages go to standard error. Put -- before a KEY or\n"
    "VALUE that starts with '-'.\n";

typedef struct {
    const char *name;
    const char *usage;
} s_help_t;

static const s_help_t s_helps[] = {
    {"put", "Usage: qkv [OPTIONS] put KEY VALUE\n"
            "\n"
            "Writes KEY = VALUE through the leader (a follower redirects the\n"
            "client there) and waits until the write commits. VALUE - reads\n"
            "the value from standard input. Prints the key's new seq and the\n"
            "entry's index; --json prints {\"ok\",\"key\",\"seq\",\"index\"}.\n"
            "Exit 2 when the write failed, also when it was not confirmed in\n"
            "time (quorum_not_reached: the entry is not rolled back).\n"},
    {"get",
     "Usage: qkv [OPTIONS] get [--min-index N] KEY\n"
     "\n"
     "Prints the value of KEY as stored, followed by a newline; --json\n"
     "prints {\"key\",\"value\",\"seq\",\"index\"}. With --min-index the\n"
     "node answers once it has applied entry N (read your writes on a\n"
     "follower). Exit 1 when the key does not exist.\n"},
    {"del", "Usage: qkv [OPTIONS] del KEY\n"
            "\n"
            "Deletes KEY (a replicated entry; the key's seq starts again at\n"
            "1). --json prints {\"ok\",\"key\",\"deleted\",\"index\"}. Exit 1\n"
            "when the key did not exist.\n"},
    {"dump", "Usage: qkv [OPTIONS] dump [--min-index N]\n"
             "\n"
             "Prints every entry of the node as KEY<TAB>VALUE lines; --json\n"
             "prints {\"entries\": {KEY: {\"value\", \"seq\"}}, \"count\",\n"
             "\"applied_index\"}. With --min-index the node answers once it\n"
             "has applied entry N.\n"},
    {"health",
     "Usage: qkv [OPTIONS] health\n"
     "\n"
     "Prints the node's role, id, replication id, indexes, limits\n"
     "(max_key_bytes, max_value_bytes, max_frame_bytes: 0 when the node\n"
     "does not say) and, on the leader, its followers; --json prints the\n"
     "same as one object.\n"},
    {"check",
     "Usage: qkv [OPTIONS] check [--wait-ms MS] ENDPOINT ENDPOINT...\n"
     "\n"
     "Finds the leader among the endpoints (tcp://HOST:PORT each: the\n"
     "first whose health says it leads; none does: the first), dumps it\n"
     "and every other node, and compares each one's entries (value and\n"
     "seq) with the leader's.\n"
     "Each follower is first given up to --wait-ms (default 5000) to apply\n"
     "the leader's commit index; one that does not is compared as it is.\n"
     "Prints per follower:\n"
     "  follower E: P% identical (N keys), M missing, X mismatched, Y "
     "extra\n"
     "where N counts the identical keys; --json prints one object.\n"
     "Exit 0 when every follower is identical, 1 on divergence, 2 on\n"
     "errors.\n"},
    {"keygen",
     "Usage: qkv keygen PREFIX\n"
     "\n"
     "Makes a CURVE key pair for a node (PREFIX = CURVE_KEY_DIR/NODE_ID) or\n"
     "a client: PREFIX.key holds the secret key (mode 0600: a node refuses\n"
     "a key others may read), PREFIX.pub the public key, which is also\n"
     "printed (--json: {\"public_key\"}). Existing files are never\n"
     "replaced. The public key goes into PEERS (|key=KEY) for a node, or\n"
     "into CLIENT_KEYS (read KEY or write KEY) for a client.\n"},
};

static const char *s_command_usage(const char *command) {
    for (size_t i = 0; i < sizeof s_helps / sizeof s_helps[0]; i++)
        if (strcmp(s_helps[i].name, command) == 0)
            return s_helps[i].usage;
    return NULL;
}

/*  ---------------------------------------------------------------------
    JSON output */

/* Writes s (len bytes) as a JSON string, escaped as the REST API escapes
   (qkv_json.h: one U+FFFD per maximal ill-formed UTF-8 subpart). */
static void s_json_str(FILE *out, const char *s, size_t len) {
    static qkv_buf_t buf; /* reused for every string the tool prints */
    qkv_buf_reset(&buf);
    if (qkv_json_string(&buf, s, len) != 0)
        fputs("\"\"", out); /* out of memory: still valid JSON */
    else
        fwrite(buf.data, 1, buf.size, out);
}

static void s_json_cstr(FILE *out, const char *s) {
    s_json_str(out, s ? s : "", s ? strlen(s) : 0);
}

/* The wire-like name of an error code, for JSON. */
static const char *s_status_name(int code) {
    switch (code) {
    case QKV_OK:
        return "ok";
    case QKV_ENOTFOUND:
        return "not_found";
    case QKV_ETIMEOUT:
        return "timeout";
    case QKV_ENOTLEADER:
        return "not_leader";
    case QKV_EQUORUM:
        return "quorum_not_reached";
    case QKV_ENOTREADY:
        return "not_ready";
    case QKV_EBADREQ:
        return "bad_request";
    case QKV_ETOOLARGE:
        return "too_large";
    case QKV_EUNAVAILABLE:
        return "unavailable";
    case QKV_EINSUFFICIENT_STORAGE:
        return "insufficient_storage";
    case QKV_ENO_LEADER:
        return "no_leader";
    case QKV_ELEADER_CHANGED:
        return "leader_changed";
    case QKV_EPROTO:
        return "protocol_error";
    case QKV_EINVAL:
        return "invalid_argument";
    case QKV_ENOMEM:
        return "out_of_memory";
    case QKV_EAGAIN:
        return "busy";
    case QKV_ECONFLICT:
        return "conflict";
    case QKV_ESESSION_EXPIRED:
        return "session_expired";
    case QKV_EOVERLOADED:
        return "overloaded";
    case QKV_EUNAUTHORIZED:
        return "unauthorized";
    case QKV_EFORBIDDEN:
        return "forbidden";
    default:
        return "error";
    }
}

/*  ---------------------------------------------------------------------
    Errors */

/* Reports a failed call on stderr (and as JSON on stdout with --json);
   returns the exit status for it. */
static int s_fail(const s_opts_t *opts, qkv_client_t *client, int code,
                  const char *what) {
    const char *detail = client ? qkv_client_errmsg(client) : "";
    const char *endpoint = client ? qkv_client_endpoint(client) : "";
    bool named = *endpoint && strstr(detail, endpoint);
    fprintf(stderr, "qkv: %s: %s%s%s%s%s%s\n", what, qkv_strerror(code),
            *detail ? ": " : "", detail, named ? "" : " (",
            named ? "" : endpoint, named ? "" : ")");
    if (opts->json) {
        printf("{\"ok\":false,\"status\":\"%s\",\"message\":",
               s_status_name(code));
        s_json_cstr(stdout, *detail ? detail : qkv_strerror(code));
        printf(",\"endpoint\":");
        s_json_cstr(stdout, endpoint);
        printf("}\n");
    }
    return code == QKV_ENOTFOUND ? S_EXIT_MISS : S_EXIT_ERROR;
}

static qkv_client_t *s_connect(const s_opts_t *opts, const char *endpoint,
                               int timeout_ms) {
    qkv_client_options_t options;
    memset(&options, 0, sizeof options);
    options.timeout_ms = timeout_ms;
    options.curve_secret_key = opts->secret[0] ? opts->secret : NULL;
    options.curve_server_key = opts->server[0] ? opts->server : NULL;
    char err[256] = "";
    qkv_client_t *client = qkv_client_new(endpoint, &options, err, sizeof err);
    if (!client) {
        fprintf(stderr, "qkv: %s\n", err);
        if (opts->json) {
            printf("{\"ok\":false,\"status\":\"error\",\"message\":");
            s_json_cstr(stdout, err);
            printf("}\n");
        }
    }
    return client;
}

static int s_usage_error(const char *command, const char *fmt,
                         const char *arg) {
    fprintf(stderr, "qkv: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry 'qkv %s%s--help'.\n", command ? command : "",
            command ? " " : "");
    return S_EXIT_ERROR;
}

/*  ---------------------------------------------------------------------
    put, get, del */

/* Reads all of stdin into a malloc'd buffer. */
static char *s_read_stdin(size_t *len) {
    size_t cap = 4096, used = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t n = fread(buf + used, 1, cap - used, stdin);
        used += n;
        if (n == 0)
            break;
        if (used == cap) {
            char *bigger = realloc(buf, cap * 2);
            if (!bigger) {
                free(buf);
                return NULL;
            }
            buf = bigger;
            cap *= 2;
        }
    }
    if (buf && ferror(stdin)) {
        free(buf);
        return NULL;
    }
    *len = used;
    return buf;
}

static int s_cmd_put(const s_opts_t *opts) {
    if (opts->argc != 2)
        return s_usage_error("put", "put takes KEY and VALUE%s", "");
    const char *key = opts->args[0];
    const char *value = opts->args[1];
    size_t value_len = strlen(value);
    char *input = NULL;
    if (strcmp(value, "-") == 0) {
        input = s_read_stdin(&value_len);
        if (!input) {
            fprintf(stderr, "qkv: cannot read the value from stdin: %s\n",
                    strerror(errno));
            return S_EXIT_ERROR;
        }
        value = input;
    }
    qkv_client_t *client = s_connect(opts, opts->endpoint, opts->timeout_ms);
    if (!client) {
        free(input);
        return S_EXIT_ERROR;
    }
    qkv_result_t result;
    int rc = qkv_put(client, key, strlen(key), value, value_len, &result);
    int status = S_EXIT_OK;
    if (rc == 0 && opts->json) {
        printf("{\"ok\":true,\"key\":");
        s_json_cstr(stdout, key);
        printf(",\"seq\":%" PRIu64 ",\"index\":%" PRIu64 "}\n", result.seq,
               result.index);
    } else if (rc == 0)
        printf("OK seq %" PRIu64 " index %" PRIu64 "\n", result.seq,
               result.index);
    else if (rc == QKV_EQUORUM) {
        fprintf(stderr,
                "qkv: put %s: quorum not reached: entry %" PRIu64
                " was not confirmed in time (it is not rolled back)\n",
                key, result.index);
        if (opts->json) {
            printf("{\"ok\":false,\"status\":\"quorum_not_reached\",\"key\":");
            s_json_cstr(stdout, key);
            printf(",\"index\":%" PRIu64 ",\"message\":", result.index);
            s_json_cstr(stdout, qkv_client_errmsg(client));
            printf("}\n");
        }
        status = S_EXIT_ERROR;
    } else
        status = s_fail(opts, client, rc, "put");
    free(input);
    qkv_client_destroy(&client);
    return status;
}

static int s_cmd_get(const s_opts_t *opts) {
    if (opts->argc != 1)
        return s_usage_error("get", "get takes one KEY%s", "");
    const char *key = opts->args[0];
    qkv_client_t *client = s_connect(opts, opts->endpoint, opts->timeout_ms);
    if (!client)
        return S_EXIT_ERROR;
    qkv_result_t result;
    int rc = qkv_get(client, key, strlen(key), opts->min_index, &result);
    int status = S_EXIT_OK;
    if (rc == 0 && opts->json) {
        printf("{\"key\":");
        s_json_cstr(stdout, key);
        printf(",\"value\":");
        s_json_str(stdout, result.value, result.value_len);
        printf(",\"seq\":%" PRIu64 ",\"index\":%" PRIu64 "}\n", result.seq,
               result.index);
    } else if (rc == 0) {
        fwrite(result.value, 1, result.value_len, stdout);
        fputc('\n', stdout);
    } else if (rc == QKV_ENOTFOUND) {
        fprintf(stderr, "qkv: not found: %s\n", key);
        if (opts->json) {
            printf("{\"ok\":false,\"status\":\"not_found\",\"key\":");
            s_json_cstr(stdout, key);
            printf("}\n");
        }
        status = S_EXIT_MISS;
    } else
        status = s_fail(opts, client, rc, "get");
    free(result.value);
    qkv_client_destroy(&client);
    return status;
}

static int s_cmd_del(const s_opts_t *opts) {
    if (opts->argc != 1)
        return s_usage_error("del", "del takes one KEY%s", "");
    const char *key = opts->args[0];
    qkv_client_t *client = s_connect(opts, opts->endpoint, opts->timeout_ms);
    if (!client)
        return S_EXIT_ERROR;
    qkv_result_t result;
    int rc = qkv_delete(client, key, strlen(key), &result);
    int status = S_EXIT_OK;
    if (rc == 0) {
        if (opts->json) {
            printf("{\"ok\":true,\"key\":");
            s_json_cstr(stdout, key);
            printf(",\"deleted\":%s,\"index\":%" PRIu64 "}\n",
                   result.deleted ? "true" : "false", result.index);
        } else if (result.deleted)
            printf("deleted (index %" PRIu64 ")\n", result.index);
        if (!result.deleted) {
            fprintf(stderr, "qkv: not found: %s\n", key);
            status = S_EXIT_MISS;
        }
    } else if (rc == QKV_EQUORUM) {
        fprintf(stderr,
                "qkv: del %s: quorum not reached: entry %" PRIu64
                " was not confirmed in time (it is not rolled back)\n",
                key, result.index);
        if (opts->json)
            printf("{\"ok\":false,\"status\":\"quorum_not_reached\","
                   "\"index\":%" PRIu64 "}\n",
                   result.index);
        status = S_EXIT_ERROR;
    } else
        status = s_fail(opts, client, rc, "del");
    qkv_client_destroy(&client);
    return status;
}

/*  ---------------------------------------------------------------------
    dump, health */

static int s_cmd_dump(const s_opts_t *opts) {
    if (opts->argc != 0)
        return s_usage_error("dump", "dump takes no argument: '%s'",
                             opts->args[0]);
    qkv_client_t *client = s_connect(opts, opts->endpoint, opts->timeout_ms);
    if (!client)
        return S_EXIT_ERROR;
    qkv_dump_t *dump = qkv_dump_new(client, opts->min_index, 0);
    if (!dump) {
        qkv_client_destroy(&client);
        fprintf(stderr, "qkv: out of memory\n");
        return S_EXIT_ERROR;
    }
    const qkv_item_t *item;
    uint64_t count = 0;
    int rc;
    if (opts->json)
        printf("{\"entries\":{");
    while ((rc = qkv_dump_next(dump, &item)) == 0 && item) {
        if (opts->json) {
            if (count)
                fputc(',', stdout);
            s_json_str(stdout, item->key, item->key_len);
            printf(":{\"value\":");
            s_json_str(stdout, item->value, item->value_len);
            printf(",\"seq\":%" PRIu64 "}", item->seq);
        } else {
            fwrite(item->key, 1, item->key_len, stdout);
            fputc('\t', stdout);
            fwrite(item->value, 1, item->value_len, stdout);
            fputc('\n', stdout);
        }
        count++;
    }
    int status = S_EXIT_OK;
    if (rc == 0 && opts->json)
        printf("},\"count\":%" PRIu64 ",\"applied_index\":%" PRIu64 "}\n",
               count, qkv_dump_applied_index(dump));
    else if (rc != 0) {
        if (opts->json)
            printf("}}\n"); /* close what was started */
        fprintf(stderr, "qkv: dump: %s: %s (%s); %" PRIu64 " entries printed\n",
                qkv_strerror(rc), qkv_client_errmsg(client),
                qkv_client_endpoint(client), count);
        status = S_EXIT_ERROR;
    }
    qkv_dump_destroy(&dump);
    qkv_client_destroy(&client);
    return status;
}

static void s_print_health_json(const qkv_health_t *h) {
    printf("{\"status\":\"ok\",\"role\":");
    s_json_cstr(stdout, h->role);
    printf(",\"id\":");
    s_json_cstr(stdout, h->node_id);
    printf(",\"replication_id\":");
    s_json_cstr(stdout, h->replication_id);
    printf(",\"last_index\":%" PRIu64 ",\"commit_index\":%" PRIu64
           ",\"applied_index\":%" PRIu64 ",\"max_key_bytes\":%" PRIu64
           ",\"max_value_bytes\":%" PRIu64 ",\"max_frame_bytes\":%" PRIu64
           ",\"error\":",
           h->last_index, h->commit_index, h->applied_index, h->max_key_bytes,
           h->max_value_bytes, h->max_frame_bytes);
    s_json_cstr(stdout, h->error);
    if (strcmp(h->role, "leader") == 0) {
        printf(",\"followers\":[");
        for (size_t i = 0; i < h->follower_count; i++) {
            const qkv_follower_info_t *f = &h->followers[i];
            printf("%s{\"id\":", i ? "," : "");
            s_json_cstr(stdout, f->id);
            printf(",\"endpoint\":");
            s_json_cstr(stdout, f->endpoint);
            printf(",\"connected\":%s,\"acked_index\":%" PRIu64
                   ",\"lag\":%" PRIu64 "}",
                   f->connected ? "true" : "false", f->acked_index, f->lag);
        }
        printf("]");
    }
    printf("}\n");
}

static int s_cmd_health(const s_opts_t *opts) {
    if (opts->argc != 0)
        return s_usage_error("health", "health takes no argument: '%s'",
                             opts->args[0]);
    qkv_client_t *client = s_connect(opts, opts->endpoint, opts->timeout_ms);
    if (!client)
        return S_EXIT_ERROR;
    qkv_health_t h;
    int rc = qkv_health(client, &h);
    int status = S_EXIT_OK;
    if (rc == 0 && opts->json)
        s_print_health_json(&h);
    else if (rc == 0) {
        printf("id:              %s\n", h.node_id);
        printf("role:            %s\n", h.role);
        printf("replication_id:  %s\n", h.replication_id);
        printf("last_index:      %" PRIu64 "\n", h.last_index);
        printf("commit_index:    %" PRIu64 "\n", h.commit_index);
        printf("applied_index:   %" PRIu64 "\n", h.applied_index);
        printf("max_key_bytes:   %" PRIu64 "\n", h.max_key_bytes);
        printf("max_value_bytes: %" PRIu64 "\n", h.max_value_bytes);
        printf("max_frame_bytes: %" PRIu64 "\n", h.max_frame_bytes);
        printf("error:           %s\n", *h.error ? h.error : "(none)");
        if (strcmp(h.role, "leader") == 0)
            printf("followers:       %zu\n", h.follower_count);
        for (size_t i = 0; i < h.follower_count; i++) {
            const qkv_follower_info_t *f = &h.followers[i];
            printf("  %s %s %s acked %" PRIu64 " lag %" PRIu64 "\n", f->id,
                   f->endpoint, f->connected ? "connected" : "disconnected",
                   f->acked_index, f->lag);
        }
    } else
        status = s_fail(opts, client, rc, "health");
    qkv_health_clear(&h);
    qkv_client_destroy(&client);
    return status;
}

/*  ---------------------------------------------------------------------
    check */

/* Every entry of one node, sorted by key. */
typedef struct {
    qkv_item_t *items; /* strings owned here */
    size_t count;
    size_t cap;
    uint64_t applied_index;
} s_snapshot_t;

static void s_snapshot_free(s_snapshot_t *snap) {
    for (size_t i = 0; i < snap->count; i++) {
        free((char *)snap->items[i].key);
        free((char *)snap->items[i].value);
    }
    free(snap->items);
    memset(snap, 0, sizeof(*snap));
}

static int s_key_cmp(const char *a, size_t alen, const char *b, size_t blen) {
    int c = memcmp(a, b, alen < blen ? alen : blen);
    return c ? c : (alen > blen) - (alen < blen);
}

static int s_item_cmp(const void *x, const void *y) {
    const qkv_item_t *a = x, *b = y;
    return s_key_cmp(a->key, a->key_len, b->key, b->key_len);
}

static char *s_dup(const char *s, size_t len) {
    char *copy = malloc(len + 1);
    if (copy) {
        memcpy(copy, s, len);
        copy[len] = '\0';
    }
    return copy;
}

/* Pulls every entry of client's node (waiting for min_index) into snap.
   Returns 0 or a qkv_err_t. */
static int s_snapshot(qkv_client_t *client, uint64_t min_index,
                      s_snapshot_t *snap) {
    memset(snap, 0, sizeof(*snap));
    qkv_dump_t *dump = qkv_dump_new(client, min_index, 0);
    if (!dump)
        return QKV_ENOMEM;
    const qkv_item_t *item;
    int rc;
    while ((rc = qkv_dump_next(dump, &item)) == 0 && item) {
        if (snap->count == snap->cap) {
            size_t cap = snap->cap ? snap->cap * 2 : 1024;
            qkv_item_t *items = realloc(snap->items, cap * sizeof(*items));
            if (!items) {
                rc = QKV_ENOMEM;
                break;
            }
            snap->items = items;
            snap->cap = cap;
        }
        qkv_item_t *copy = &snap->items[snap->count];
        *copy = *item;
        copy->key = s_dup(item->key, item->key_len);
        copy->value = s_dup(item->value, item->value_len);
        snap->count++;
        if (!copy->key || !copy->value) {
            rc = QKV_ENOMEM;
            break;
        }
    }
    snap->applied_index = qkv_dump_applied_index(dump);
    qkv_dump_destroy(&dump);
    if (rc != 0) {
        s_snapshot_free(snap);
        return rc;
    }
    qsort(snap->items, snap->count, sizeof(*snap->items), s_item_cmp);
    return 0;
}

/* How one follower compares with the leader. */
typedef struct {
    const char *endpoint;
    int error; /* 0, or why it could not be compared */
    char message[256];
    bool caught_up; /* applied the leader's commit index in time */
    uint64_t applied_index;
    size_t keys;
    size_t identical;
    size_t missing;    /* on the leader only */
    size_t mismatched; /* different value or seq */
    size_t extra;      /* on the follower only */
} s_verdict_t;

static void s_compare(const s_snapshot_t *leader, const s_snapshot_t *node,
                      s_verdict_t *v) {
    size_t i = 0, j = 0;
    v->keys = node->count;
    while (i < leader->count || j < node->count) {
        int c = i == leader->count ? 1
                : j == node->count
                    ? -1
                    : s_item_cmp(&leader->items[i], &node->items[j]);
        if (c < 0) {
            v->missing++;
            i++;
        } else if (c > 0) {
            v->extra++;
            j++;
        } else {
            const qkv_item_t *a = &leader->items[i++], *b = &node->items[j++];
            if (a->seq == b->seq && a->value_len == b->value_len &&
                memcmp(a->value, b->value, a->value_len) == 0)
                v->identical++;
            else
                v->mismatched++;
        }
    }
}

static double s_percent(const s_verdict_t *v, size_t leader_keys) {
    if (leader_keys == 0)
        return v->extra ? 0.0 : 100.0;
    return 100.0 * (double)v->identical / (double)leader_keys;
}

/* Whether the node behind client applies min_index within the client's
   timeout (a one-key dump that waits for it). */
static bool s_caught_up(qkv_client_t *client, uint64_t min_index) {
    qkv_dump_t *probe = qkv_dump_new(client, min_index, 1);
    const qkv_item_t *item;
    bool ok = probe && qkv_dump_next(probe, &item) == 0;
    qkv_dump_destroy(&probe);
    return ok;
}

/* Checks one follower against the leader's snapshot. */
static void s_check_one(const s_opts_t *opts, const s_snapshot_t *leader,
                        uint64_t commit_index, s_verdict_t *v) {
    /* The node waits for min_index for 3/4 of the request's timeout at
       most (1 s less for long ones): pick the timeout that makes it
       wait wait_ms (a little longer for tiny waits, so that an answer
       has time to come back). */
    int wait = opts->wait_ms;
    int timeout = wait >= 3000 ? wait + 1000 : (wait * 4) / 3 + 1;
    if (timeout < 200)
        timeout = 200;
    qkv_client_t *client = s_connect(opts, v->endpoint, timeout);
    if (!client) {
        v->error = QKV_EINVAL;
        snprintf(v->message, sizeof v->message, "cannot connect");
        return;
    }
    v->caught_up = s_caught_up(client, commit_index);
    if (!v->caught_up)
        fprintf(stderr,
                "qkv: check: %s did not apply index %" PRIu64
                " within %d ms (%s); compared as it is\n",
                v->endpoint, commit_index, wait, qkv_client_errmsg(client));
    qkv_client_set_timeout(client, opts->timeout_ms ? opts->timeout_ms : 5000);
    s_snapshot_t snap;
    int rc = s_snapshot(client, v->caught_up ? commit_index : 0, &snap);
    if (rc != 0) {
        v->error = rc;
        snprintf(v->message, sizeof v->message, "%s: %s", qkv_strerror(rc),
                 qkv_client_errmsg(client));
    } else {
        v->applied_index = snap.applied_index;
        s_compare(leader, &snap, v);
        s_snapshot_free(&snap);
    }
    qkv_client_destroy(&client);
}

/* The first of the endpoints whose health says it leads (with elections
   it may be any of them), or 0 when none does. */
static int s_find_leader(const s_opts_t *opts) {
    for (int i = 0; i < opts->argc; i++) {
        qkv_client_options_t o = {.timeout_ms = opts->timeout_ms,
                                  .retry_ms = -1};
        char err[256];
        qkv_client_t *c = qkv_client_new(opts->args[i], &o, err, sizeof err);
        qkv_health_t h;
        bool leads = c && qkv_health(c, &h) == 0 && !strcmp(h.role, "leader");
        if (c && leads)
            qkv_health_clear(&h);
        qkv_client_destroy(&c);
        if (leads)
            return i;
    }
    return 0;
}

static int s_cmd_check(const s_opts_t *opts) {
    if (opts->argc < 2)
        return s_usage_error("check",
                             "check takes the leader's endpoint and at least "
                             "one follower's%s",
                             "");
    int first = s_find_leader(opts);
    if (first) { /* the leader first, the others after it */
        char *leader_arg = opts->args[first];
        memmove(opts->args + 1, opts->args, (size_t)first * sizeof(char *));
        opts->args[0] = leader_arg;
    }
    const char *leader_ep = opts->args[0];
    qkv_client_t *client = s_connect(opts, leader_ep, opts->timeout_ms);
    if (!client)
        return S_EXIT_ERROR;
    qkv_health_t h;
    int rc = qkv_health(client, &h);
    if (rc != 0) {
        int status = s_fail(opts, client, rc, "check: leader health");
        qkv_client_destroy(&client);
        return status;
    }
    bool is_leader = strcmp(h.role, "leader") == 0;
    uint64_t commit_index = is_leader ? h.commit_index : h.applied_index;
    if (!is_leader)
        fprintf(stderr, "qkv: check: %s is a %s, not the leader\n", leader_ep,
                h.role);
    qkv_health_clear(&h);
    s_snapshot_t leader;
    rc = s_snapshot(client, commit_index, &leader);
    if (rc != 0) {
        int status = s_fail(opts, client, rc, "check: leader dump");
        qkv_client_destroy(&client);
        return status;
    }
    qkv_client_destroy(&client);

    size_t n = (size_t)opts->argc - 1;
    s_verdict_t *verdicts = calloc(n, sizeof(*verdicts));
    if (!verdicts) {
        s_snapshot_free(&leader);
        fprintf(stderr, "qkv: out of memory\n");
        return S_EXIT_ERROR;
    }
    bool errors = false, diverged = false;
    for (size_t i = 0; i < n; i++) {
        s_verdict_t *v = &verdicts[i];
        v->endpoint = opts->args[i + 1];
        s_check_one(opts, &leader, commit_index, v);
        if (v->error)
            errors = true;
        else if (v->missing || v->mismatched || v->extra)
            diverged = true;
    }

    if (opts->json) {
        printf("{\"leader\":{\"endpoint\":");
        s_json_cstr(stdout, leader_ep);
        printf(",\"keys\":%zu,\"commit_index\":%" PRIu64
               ",\"applied_index\":%" PRIu64 "},\"followers\":[",
               leader.count, commit_index, leader.applied_index);
        for (size_t i = 0; i < n; i++) {
            const s_verdict_t *v = &verdicts[i];
            printf("%s{\"endpoint\":", i ? "," : "");
            s_json_cstr(stdout, v->endpoint);
            if (v->error) {
                printf(",\"ok\":false,\"error\":");
                s_json_cstr(stdout, v->message);
                printf("}");
                continue;
            }
            printf(",\"ok\":true,\"identical\":%s,\"identical_pct\":%.2f,"
                   "\"keys\":%zu,\"identical_keys\":%zu,\"missing\":%zu,"
                   "\"mismatched\":%zu,\"extra\":%zu,\"caught_up\":%s,"
                   "\"applied_index\":%" PRIu64 "}",
                   v->missing || v->mismatched || v->extra ? "false" : "true",
                   s_percent(v, leader.count), v->keys, v->identical,
                   v->missing, v->mismatched, v->extra,
                   v->caught_up ? "true" : "false", v->applied_index);
        }
        printf("],\"identical\":%s,\"errors\":%s}\n",
               diverged || errors ? "false" : "true",
               errors ? "true" : "false");
    } else {
        printf("leader %s: %zu keys, commit index %" PRIu64 "\n", leader_ep,
               leader.count, commit_index);
        for (size_t i = 0; i < n; i++) {
            const s_verdict_t *v = &verdicts[i];
            if (v->error) {
                printf("follower %s: error: %s\n", v->endpoint, v->message);
                continue;
            }
            printf("follower %s: %.2f%% identical (%zu keys), %zu missing, "
                   "%zu mismatched, %zu extra\n",
                   v->endpoint, s_percent(v, leader.count), v->identical,
                   v->missing, v->mismatched, v->extra);
        }
    }
    for (size_t i = 0; i < n; i++)
        if (verdicts[i].error)
            fprintf(stderr, "qkv: check: %s: %s\n", verdicts[i].endpoint,
                    verdicts[i].message);
    if (diverged && !errors)
        fprintf(stderr, "qkv: check: followers differ from the leader\n");
    free(verdicts);
    s_snapshot_free(&leader);
    return errors ? S_EXIT_ERROR : diverged ? S_EXIT_MISS : S_EXIT_OK;
}

/*  ---------------------------------------------------------------------
    Command line */

static bool s_parse_u64(const char *text, uint64_t *out) {
    if (!text || !*text || *text == '-' || *text == '+')
        return false;
    char *end = NULL;
    errno = 0;
    unsigned long long value = strtoull(text, &end, 10);
    if (errno || *end)
        return false;
    *out = value;
    return true;
}

static bool s_parse_ms(const char *text, int *out, int min) {
    uint64_t value;
    if (!s_parse_u64(text, &value) || value > 86400000 || (int)value < min)
        return false;
    *out = (int)value;
    return true;
}

/* keygen PREFIX: PREFIX.key and PREFIX.pub. */
static int s_cmd_keygen(const s_opts_t *opts) {
    if (opts->argc != 1)
        return s_usage_error("keygen", "keygen takes one PREFIX%s", "");
    char public_key[41], secret_key[41], path[4200], err[4400];
    if (zmq_curve_keypair(public_key, secret_key) != 0) {
        fprintf(stderr, "qkv: keygen: %s\n", zmq_strerror(errno));
        return S_EXIT_ERROR;
    }
    snprintf(path, sizeof path, "%s.key", opts->args[0]);
    int rc =
        qkv_key_write(path, secret_key, true,
                      "qkv CURVE secret key: keep it private", err, sizeof err);
    explicit_bzero(secret_key, sizeof secret_key);
    if (rc == 0) {
        snprintf(path, sizeof path, "%s.pub", opts->args[0]);
        rc = qkv_key_write(path, public_key, false, "qkv CURVE public key", err,
                           sizeof err);
    }
    if (rc != 0) {
        fprintf(stderr, "qkv: keygen: %s\n", err);
        return S_EXIT_ERROR;
    }
    if (opts->json)
        printf("{\"public_key\":\"%s\"}\n", public_key);
    else
        printf("%s\n", public_key);
    return S_EXIT_OK;
}

/* Reads --key and --server-key. Returns -1 to go on, else an exit
   status. */
static int s_load_keys(s_opts_t *opts) {
    char err[512];
    if (opts->key_file && *opts->key_file &&
        qkv_client_read_key(opts->key_file, true, opts->secret, err,
                            sizeof err) != QKV_OK) {
        fprintf(stderr, "qkv: --key: %s\n", err);
        return S_EXIT_ERROR;
    }
    const char *k = opts->server_key;
    if (k && *k && !qkv_key_text(k) &&
        qkv_client_read_key(k, false, opts->server, err, sizeof err) !=
            QKV_OK) {
        fprintf(stderr, "qkv: --server-key: neither a key nor a key file: %s\n",
                err);
        return S_EXIT_ERROR;
    }
    if (k && qkv_key_text(k))
        memcpy(opts->server, k, sizeof opts->server);
    return -1;
}

enum { S_OPT_MIN_INDEX = 256, S_OPT_WAIT_MS };

/* Parses argv. Returns -1 to go on, else an exit status. */
static int s_parse(int argc, char **argv, s_opts_t *opts, const char **cmd) {
    static const struct option longopts[] = {
        {"endpoint", required_argument, NULL, 'e'},
        {"timeout-ms", required_argument, NULL, 't'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {"min-index", required_argument, NULL, S_OPT_MIN_INDEX},
        {"wait-ms", required_argument, NULL, S_OPT_WAIT_MS},
        {"key", required_argument, NULL, 'k'},
        {"server-key", required_argument, NULL, 's'},
        {NULL, 0, NULL, 0}};
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":e:t:jhk:s:", longopts, NULL)) != -1) {
        switch (c) {
        case 'k':
            opts->key_file = optarg;
            break;
        case 's':
            opts->server_key = optarg;
            break;
        case 'e':
            opts->endpoint = optarg;
            break;
        case 't':
            if (!s_parse_ms(optarg, &opts->timeout_ms, 1))
                return s_usage_error(NULL, "bad --timeout-ms '%s'", optarg);
            break;
        case 'j':
            opts->json = true;
            break;
        case 'h':
            opts->help = true;
            break;
        case S_OPT_MIN_INDEX:
            if (!s_parse_u64(optarg, &opts->min_index))
                return s_usage_error(NULL, "bad --min-index '%s'", optarg);
            opts->has_min_index = true;
            break;
        case S_OPT_WAIT_MS:
            if (!s_parse_ms(optarg, &opts->wait_ms, 0))
                return s_usage_error(NULL, "bad --wait-ms '%s'", optarg);
            opts->has_wait_ms = true;
            break;
        case ':':
            return s_usage_error(NULL, "option '%s' needs a value",
                                 argv[optind - 1]);
        default:
            return s_usage_error(NULL, "unknown option '%s'", argv[optind - 1]);
        }
    }
    *cmd = optind < argc ? argv[optind] : NULL;
    opts->args = argv + optind + (optind < argc);
    opts->argc = argc - optind - (optind < argc);
    return -1;
}

int main(int argc, char **argv) {
    s_opts_t opts;
    memset(&opts, 0, sizeof opts);
    opts.wait_ms = S_DEFAULT_WAIT_MS;
    const char *env = getenv("QKV_ENDPOINT");
    opts.endpoint = env && *env ? env : S_DEFAULT_ENDPOINT;
    opts.key_file = getenv("QKV_KEY_FILE");
    opts.server_key = getenv("QKV_SERVER_KEY");
    const char *cmd = NULL;
    int status = s_parse(argc, argv, &opts, &cmd);
    if (status >= 0)
        return status;
    if (!cmd) {
        fputs(s_main_usage, opts.help ? stdout : stderr);
        return opts.help ? S_EXIT_OK : S_EXIT_ERROR;
    }
    const char *usage = s_command_usage(cmd);
    if (!usage)
        return s_usage_error(NULL, "unknown command '%s'", cmd);
    if (opts.help) {
        fputs(usage, stdout);
        return S_EXIT_OK;
    }
    if (opts.has_min_index && strcmp(cmd, "get") && strcmp(cmd, "dump"))
        return s_usage_error(cmd, "--min-index is for get and dump%s", "");
    if (opts.has_wait_ms && strcmp(cmd, "check"))
        return s_usage_error(cmd, "--wait-ms is for check%s", "");
    if (strcmp(cmd, "keygen") != 0 && (status = s_load_keys(&opts)) >= 0)
        return status;
    int (*commands[])(const s_opts_t *) = {
        s_cmd_put,    s_cmd_get,   s_cmd_del,   s_cmd_dump,
        s_cmd_health, s_cmd_check, s_cmd_keygen};
    for (size_t i = 0; i < sizeof s_helps / sizeof s_helps[0]; i++)
        if (strcmp(s_helps[i].name, cmd) == 0) {
            status = commands[i](&opts);
            break;
        }
    fflush(stdout);
    return status;
}
