/*  qkv_config.h - the node's settings: environment variables and flags
    (flags win), every value checked before the node starts.
*/
#ifndef QKV_CONFIG_H
#define QKV_CONFIG_H

#include <sched.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum {
    QKV_ROLE_LEADER = 0,
    QKV_ROLE_FOLLOWER = 1,
    QKV_ROLE_CANDIDATE = 2 /* PEERS: asking for (pre-)votes */
} qkv_role_t;

#define QKV_MAX_FOLLOWERS 64
#define QKV_MAX_NODES (QKV_MAX_FOLLOWERS + 1) /* in PEERS */

/* One node of the cluster as PEERS names it. */
typedef struct {
    char id[128];      /* its NODE_ID */
    char repl[257];    /* tcp://HOST:PORT: its replication ROUTER */
    char client[257];  /* tcp://HOST:PORT: its zmq-native client ROUTER */
    char http[1024];   /* http(s)://HOST:PORT: its REST gateway */
    char options[512]; /* KEY=VALUE|... after those, kept as given */
    char key[41];      /* option key=: its CURVE public key (Z85); "" */
} qkv_peer_t;

typedef struct {
    qkv_role_t role;                    /* ROLE */
    char node_id[128];                  /* NODE_ID, default ROLE-PORT */
    int port;                           /* PORT, HTTP */
    char bind[64];                      /* BIND, address of every listener */
    int repl_port;                      /* REPL_PORT, follower's ROUTER */
    char *followers[QKV_MAX_FOLLOWERS]; /* FOLLOWERS, owned strings */
    size_t follower_count;              /* entries used in followers[] */
    int write_quorum;           /* WRITE_QUORUM, follower acks per commit */
    int64_t min_delay_us;       /* MIN_DELAY_MS / MIN_DELAY */
    int64_t max_delay_us;       /* MAX_DELAY_MS / MAX_DELAY */
    int replication_timeout_ms; /* REPLICATION_TIMEOUT_MS, write deadline */
    int heartbeat_ms;           /* HEARTBEAT_MS */
    int commit_notify_ms;       /* COMMIT_NOTIFY_MS */
    cpu_set_t cpu_set;          /* CPU_LIST, when cpu_count > 0 */
    size_t cpu_count;           /* CPUs in cpu_set; 0: CPU_LIST unset */
    char leader_url[1024];      /* LEADER_URL, follower: 307 target; "" unset */
    int http_threads;           /* HTTP_THREADS */
    size_t max_key_bytes;       /* MAX_KEY_BYTES */
    size_t max_value_bytes;     /* MAX_VALUE_BYTES */
    int client_port;            /* CLIENT_PORT, zmq-native clients */
    char leader_endpoint[257];  /* LEADER_ENDPOINT, follower: the leader's
                                   client endpoint; "" unset */
    char client_advertise[257]; /* CLIENT_ADVERTISE, leader: the client
                                   endpoint followers hand out; "" none */
    size_t dedup_window;        /* DEDUP_WINDOW, tagged writes remembered */
    uint64_t session_ttl_s;     /* SESSION_TTL_S, idle session lifetime */
    char data_dir[4096];        /* DATA_DIR; "" = none (memory only) */
    int fsync;                  /* FSYNC: qkv_fsync_t */
    uint64_t snapshot_entries;  /* SNAPSHOT_ENTRIES */
    uint64_t snapshot_log_bytes; /* SNAPSHOT_LOG_BYTES */
    uint64_t wal_segment_bytes;  /* WAL_SEGMENT_BYTES */
    bool syncing_reads;          /* SYNCING_READS: serve (true) or refuse */
    bool repair_log;             /* REPAIR_LOG */
    bool drop_foreign_data;      /* DROP_FOREIGN_DATA */
    /* PEERS: elections. Unset: the static roles above. Set: every node
       lists the same nodes; self is this node's entry (NODE_ID), the
       others fill followers[] (in PEERS order, self left out: the peer
       slots), role is follower until an election says otherwise, and
       LEADER_URL, LEADER_ENDPOINT and CLIENT_ADVERTISE come from PEERS. */
    qkv_peer_t *peers;       /* owned; NULL without PEERS */
    size_t peer_count;       /* nodes in PEERS, this one included */
    size_t self;             /* this node's entry */
    bool campaign_at_start;  /* ROLE=leader with PEERS: bootstrap wish */
    int election_timeout_ms; /* ELECTION_TIMEOUT_MS */
    uint64_t cluster_hash;   /* of PEERS, WRITE_QUORUM and FSYNC: nodes
                                that differ refuse each other */
    /* Security and limits. */
    bool curve;                  /* CURVE: on needs PEERS with keys */
    char curve_key_dir[4096];    /* CURVE_KEY_DIR: holds NODE_ID.key */
    char client_keys[4096];      /* CLIENT_KEYS file; "" = any key */
    char http_tokens_file[4096]; /* HTTP_TOKENS_FILE; "" = no tokens */
    char tls_cert_file[4096];    /* TLS_CERT_FILE; "" = plain HTTP */
    char tls_key_file[4096];     /* TLS_KEY_FILE; "" with TLS: the cert's */
    uint64_t max_memory;         /* MAX_MEMORY bytes; 0 = no limit */
    size_t max_body_bytes;       /* MAX_BODY_BYTES, largest REST body */
    int max_pending_writes;      /* MAX_PENDING_WRITES, writes in flight */
    int request_timeout_ms;      /* REQUEST_TIMEOUT_MS, slow REST clients */
} qkv_config_t;

/* The PEERS entry of peer slot p (0 .. follower_count - 1). */
const qkv_peer_t *qkv_config_peer(const qkv_config_t *cfg, size_t slot);

/* Looks up an environment variable; returns NULL when unset. */
typedef const char *(qkv_getenv_fn)(const char *name);

/* Fills cfg from getenv (NULL: no environment) and then argv (argv[0] is
   the program name). Returns 0 when the node may start, 1 when --help was
   asked for, -1 on a bad setting with a message naming it in err. cfg must
   be released with qkv_config_clear whatever the result. */
int qkv_config_parse(qkv_config_t *cfg, int argc, char *const *argv,
                     qkv_getenv_fn *getenv_fn, char *err, size_t err_size);

/* Prints every setting with its variable, flag and default. */
void qkv_config_usage(FILE *out);

/* Frees what cfg owns and zeroes it. */
void qkv_config_clear(qkv_config_t *cfg);

#endif
