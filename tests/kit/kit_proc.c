/*  kit_proc.c - the test kit's processes: free ports, qkv-node instances
    with their logs, and clusters of them. No node outlives the test: each
    is registered and killed at exit or on a fatal signal, and dies with its
    parent thread through PR_SET_PDEATHSIG when the test is killed hard.
*/
#include "kit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/*  ---------------------------------------------------------------------
    Registry of running children, killed at exit */

#define S_MAX_CHILDREN 256
static volatile pid_t s_children[S_MAX_CHILDREN];
static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;

static void s_kill_all(void) {
    for (int i = 0; i < S_MAX_CHILDREN; i++) {
        pid_t pid = s_children[i];
        if (pid > 0) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            s_children[i] = 0;
        }
    }
}

static void s_on_signal(int sig) {
    for (int i = 0; i < S_MAX_CHILDREN; i++)
        if (s_children[i] > 0)
            kill(s_children[i], SIGKILL);
    signal(sig, SIG_DFL);
    raise(sig);
}

static void s_install_once(void) {
    static bool installed = false;
    if (installed)
        return;
    installed = true;
    atexit(s_kill_all);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static void s_register(pid_t pid, pid_t old) {
    pthread_mutex_lock(&s_lock);
    for (int i = 0; i < S_MAX_CHILDREN; i++) {
        if (s_children[i] == old) {
            s_children[i] = pid;
            break;
        }
    }
    pthread_mutex_unlock(&s_lock);
}

bool kit_any_node_exited(void) {
    bool exited = false;
    pthread_mutex_lock(&s_lock);
    for (int i = 0; i < S_MAX_CHILDREN && !exited; i++) {
        if (s_children[i] <= 0)
            continue;
        siginfo_t info;
        memset(&info, 0, sizeof info);
        exited = waitid(P_PID, (id_t)s_children[i], &info,
                        WEXITED | WNOHANG | WNOWAIT) == 0 &&
                 info.si_pid == s_children[i];
    }
    pthread_mutex_unlock(&s_lock);
    return exited;
}

/*  ---------------------------------------------------------------------
    Ports, binary, logs */

/* Binds 127.0.0.1:port (0: any) and returns the port bound, -1 if none. */
static int s_try_bind(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in addr = {.sin_family = AF_INET};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons((uint16_t)port);
    socklen_t len = sizeof addr;
    int bound = -1;
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) == 0 &&
        getsockname(fd, (struct sockaddr *)&addr, &len) == 0)
        bound = ntohs(addr.sin_port);
    close(fd);
    return bound;
}

/* A port below the kernel's ephemeral range, so that no outgoing
   connection takes it while a node is down between stop and restart; 0
   when the range leaves no room. */
static int s_candidate(kit_rng_t *rng) {
    int low = 32768, high = 60999;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f) {
        if (fscanf(f, "%d %d", &low, &high) != 2)
            low = 32768;
        fclose(f);
    }
    if (low < 12000)
        return 0;
    return 10000 + (int)kit_rng_below(rng, (uint64_t)(low - 10000));
}

int kit_free_port(void) {
    static int used[1024];
    static size_t used_count = 0;
    static kit_rng_t rng = {0};
    if (rng.state == 0)
        kit_rng_seed(&rng,
                     (uint64_t)getpid() * 2654435761u ^ (uint64_t)kit_now_ms());
    for (int attempt = 0; attempt < 200; attempt++) {
        int candidate = attempt < 100 ? s_candidate(&rng) : 0;
        int port = s_try_bind(candidate);
        if (port <= 0)
            continue;
        bool seen = false;
        for (size_t i = 0; i < used_count; i++)
            seen = seen || used[i] == port;
        if (!seen && used_count < 1024) {
            used[used_count++] = port;
            return port;
        }
    }
    return -1;
}

const char *kit_node_bin(void) {
    const char *bin = getenv("QKV_NODE_BIN");
    if (!bin || !*bin)
        kit_skip("QKV_NODE_BIN is not set (run through ctest)", true);
    if (access(bin, X_OK) != 0) {
        char why[600];
        snprintf(why, sizeof why, "QKV_NODE_BIN %s is not executable", bin);
        kit_skip(why, true);
    }
    return bin;
}

const char *kit_log_dir(void) {
    const char *dir = getenv("QKV_TEST_LOG_DIR");
    if (!dir || !*dir)
        dir = "./test-logs";
    mkdir(dir, 0755);
    return dir;
}

/*  ---------------------------------------------------------------------
    Nodes */

/* <dir>/<program>-<name>.log, then .2.log, .3.log, ... when a name comes
   again in this process, so a second cluster keeps the first one's logs. */
static void s_log_path(char *path, size_t size, const char *name) {
    static char seen[64][32];
    static unsigned times[64];
    size_t i = 0;
    while (i < 64 && seen[i][0] && strcmp(seen[i], name) != 0)
        i++;
    unsigned n = 1;
    if (i < 64) {
        snprintf(seen[i], sizeof seen[i], "%s", name);
        n = ++times[i];
    }
    if (n == 1)
        snprintf(path, size, "%s/%s-%s.log", kit_log_dir(),
                 program_invocation_short_name, name);
    else
        snprintf(path, size, "%s/%s-%s.%u.log", kit_log_dir(),
                 program_invocation_short_name, name, n);
}

void kit_node_init(kit_node_t *node, const char *name, int port,
                   int repl_port) {
    memset(node, 0, sizeof *node);
    snprintf(node->name, sizeof node->name, "%s", name);
    snprintf(node->url, sizeof node->url, "http://127.0.0.1:%d", port);
    node->port = port;
    node->repl_port = repl_port;
    node->argv[0] = strdup(kit_node_bin());
    node->argc = 1;
    node->client_port = kit_free_port();
    char client[16];
    snprintf(client, sizeof client, "%d", node->client_port);
    kit_node_args(node, "--client-port", client, NULL);
    s_log_path(node->log_path, sizeof node->log_path, name);
    unlink(node->log_path);
    /* a fresh data directory next to the log, named as the log is */
    const char *base = strrchr(node->log_path, '/');
    base = base ? base + 1 : node->log_path;
    char data[300], stem[100];
    snprintf(data, sizeof data, "%.290s/data", kit_log_dir());
    mkdir(data, 0755);
    snprintf(stem, sizeof stem, "%.*s", (int)(strlen(base) - 4), base);
    snprintf(node->data_dir, sizeof node->data_dir, "%s/%s", data, stem);
    kit_rmtree(node->data_dir);
    /* log segments are allocated whole: small ones keep the suites'
       disk use small (and make them roll often) */
    kit_node_args(node, "--data-dir", node->data_dir, "--wal-segment-bytes",
                  "1048576", NULL);
}

static int s_rm_one(const char *path, const struct stat *st, int flag,
                    struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int kit_rmtree(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : -1;
    return nftw(path, s_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int kit_node_args(kit_node_t *node, ...) {
    va_list ap;
    va_start(ap, node);
    const char *arg;
    int rc = 0;
    while ((arg = va_arg(ap, const char *)) != NULL) {
        if (node->argc + 1 >= KIT_MAX_ARGS) {
            rc = -1;
            break;
        }
        node->argv[node->argc++] = strdup(arg);
    }
    va_end(ap);
    return rc;
}

/* The environment minus every qkv setting, so only our flags count. */
static char **s_clean_env(void) {
    static const char *const vars[] = {"ROLE=",
                                       "NODE_ID=",
                                       "PORT=",
                                       "BIND=",
                                       "REPL_PORT=",
                                       "FOLLOWERS=",
                                       "WRITE_QUORUM=",
                                       "MIN_DELAY_MS=",
                                       "MAX_DELAY_MS=",
                                       "MIN_DELAY=",
                                       "MAX_DELAY=",
                                       "REPLICATION_TIMEOUT_MS=",
                                       "HEARTBEAT_MS=",
                                       "LEADER_URL=",
                                       "HTTP_THREADS=",
                                       "MAX_KEY_BYTES=",
                                       "MAX_VALUE_BYTES=",
                                       "CLIENT_PORT=",
                                       "LEADER_ENDPOINT=",
                                       "CLIENT_ADVERTISE=",
                                       "DEDUP_WINDOW=",
                                       "SESSION_TTL_S=",
                                       "DATA_DIR=",
                                       "FSYNC=",
                                       "SNAPSHOT_ENTRIES=",
                                       "SNAPSHOT_LOG_BYTES=",
                                       "WAL_SEGMENT_BYTES=",
                                       "SYNCING_READS=",
                                       "REPAIR_LOG=",
                                       "DROP_FOREIGN_DATA=",
                                       "PEERS=",
                                       "ELECTION_TIMEOUT_MS=",
                                       "CURVE=",
                                       "CURVE_KEY_DIR=",
                                       "CLIENT_KEYS=",
                                       "HTTP_TOKENS_FILE=",
                                       "TLS_CERT_FILE=",
                                       "TLS_KEY_FILE=",
                                       "MAX_MEMORY=",
                                       "MAX_BODY_BYTES=",
                                       "MAX_PENDING_WRITES=",
                                       "REQUEST_TIMEOUT_MS=",
                                       "COMMIT_NOTIFY_MS=",
                                       "CPU_LIST=",
                                       NULL};
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + 1, sizeof *env);
    size_t k = 0;
    for (size_t i = 0; env && i < n; i++) {
        bool drop = false;
        for (size_t v = 0; vars[v] && !drop; v++)
            drop = strncmp(environ[i], vars[v], strlen(vars[v])) == 0;
        if (!drop)
            env[k++] = environ[i];
    }
    return env;
}

/* In the child, between fork and exec: async-signal-safe calls only. */
static void s_exec_child(const kit_node_t *node, char **env, pid_t parent) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127);
    int log = open(node->log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    int null = open("/dev/null", O_RDONLY);
    if (log < 0 || null < 0)
        _exit(127);
    dup2(null, 0);
    dup2(log, 1);
    dup2(log, 2);
    if (syscall(SYS_close_range, 3U, ~0U, 0U) != 0)
        for (int fd = 3; fd < 4096; fd++)
            close(fd);
    execve(node->argv[0], node->argv, env);
    _exit(127);
}

int kit_node_start(kit_node_t *node) {
    s_install_once();
    if (node->pid > 0)
        return -1;
    char **env = s_clean_env();
    if (!env)
        return -1;
    FILE *log = fopen(node->log_path, "a");
    if (log) {
        fprintf(log, "---- kit: starting %s:", node->name);
        for (int i = 0; i < node->argc; i++)
            fprintf(log, " %s", node->argv[i]);
        fprintf(log, "\n");
        fclose(log);
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0)
        s_exec_child(node, env, parent);
    free(env);
    if (pid < 0) {
        fprintf(stderr, "kit: fork: %s\n", strerror(errno));
        return -1;
    }
    node->pid = pid;
    node->crash_code = 0;
    s_register(pid, 0);
    return 0;
}

/* Reaps the child if it exited; returns true and sets *status then. */
static bool s_reap(kit_node_t *node, int *status) {
    if (node->pid <= 0)
        return false;
    pid_t r = waitpid(node->pid, status, WNOHANG);
    if (r == node->pid || (r < 0 && errno == ECHILD)) {
        if (r < 0)
            *status = 0;
        s_register(0, node->pid);
        node->pid = 0;
        return true;
    }
    return false;
}

static int s_exit_code(int status) {
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return -1;
}

bool kit_node_running(kit_node_t *node) {
    int status;
    if (node->pid <= 0)
        return false;
    if (s_reap(node, &status)) {
        int code = s_exit_code(status);
        node->crash_code = code ? code : -1;
        fprintf(stderr, "kit: node %s exited by itself with code %d\n",
                node->name, code);
        return false;
    }
    return true;
}

void kit_node_term(kit_node_t *node) {
    /* Our idle keep-alive connections would hold the node's HTTP workers
       (and its exit) for up to their timeout: close them first. */
    kit_http_thread_done();
    if (node->pid > 0)
        kill(node->pid, SIGTERM);
}

int kit_node_wait(kit_node_t *node, int timeout_ms) {
    int status = 0;
    if (node->pid <= 0)
        return node->crash_code;
    int64_t deadline = kit_now_ms() + timeout_ms;
    while (!s_reap(node, &status) && kit_now_ms() < deadline) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    if (node->pid > 0) {
        fprintf(stderr, "kit: node %s ignored SIGTERM for %d ms: SIGKILL\n",
                node->name, timeout_ms);
        kill(node->pid, SIGKILL);
        waitpid(node->pid, &status, 0);
        s_register(0, node->pid);
        node->pid = 0;
    }
    int code = s_exit_code(status);
    if (code != 0) {
        fprintf(stderr, "kit: node %s exited with code %d (log %s)\n",
                node->name, code, node->log_path);
        kit_node_print_log(node, 2000);
    }
    return code;
}

void kit_node_kill(kit_node_t *node) {
    if (node->pid <= 0)
        return;
    kill(node->pid, SIGKILL);
    waitpid(node->pid, NULL, 0);
    s_register(0, node->pid);
    node->pid = 0;
    node->crash_code = 0;
}

int kit_node_stop(kit_node_t *node, int timeout_ms) {
    kit_node_term(node);
    return kit_node_wait(node, timeout_ms);
}

typedef struct {
    kit_node_t *node;
    bool healthy;
} s_health_t;

static bool s_healthy_or_dead(void *arg) {
    s_health_t *h = arg;
    if (h->node->argc > 0 && !kit_node_running(h->node))
        return true; /* ours, and it exited */
    long status = 0;
    kit_http_set_timeout_ms(1000);
    kit_http_set_quiet(true);
    char url[300];
    snprintf(url, sizeof url, "%s/health", h->node->url);
    int rc = kit_http_get(url, &status, NULL);
    kit_http_set_quiet(false);
    kit_http_set_timeout_ms(30000);
    h->healthy = rc == 0 && status == 200;
    return h->healthy;
}

int kit_node_wait_healthy(kit_node_t *node, int timeout_ms) {
    s_health_t h = {node, false};
    kit_poll_until(timeout_ms, s_healthy_or_dead, &h);
    if (h.healthy)
        return 0;
    if (node->argc && node->pid <= 0)
        fprintf(stderr, "kit: node %s (%s) exited before it was healthy\n",
                node->name, node->url);
    else
        fprintf(stderr, "kit: node %s (%s) not healthy after %d ms\n",
                node->name, node->url, timeout_ms);
    kit_node_print_log(node, 3000);
    return -1;
}

void kit_node_print_log(const kit_node_t *node, size_t bytes) {
    if (!node->log_path[0])
        return;
    FILE *f = fopen(node->log_path, "r");
    if (!f)
        return;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    long from = size > (long)bytes ? size - (long)bytes : 0;
    fseek(f, from, SEEK_SET);
    fprintf(stderr, "---- last %ld bytes of %s ----\n", size - from,
            node->log_path);
    char chunk[1024];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        fwrite(chunk, 1, n, stderr);
    fprintf(stderr, "---- end of %s ----\n", node->log_path);
    fclose(f);
}

void kit_node_free(kit_node_t *node) {
    if (node->pid > 0)
        kit_node_stop(node, 5000);
    for (int i = 0; i < node->argc; i++)
        free(node->argv[i]);
    memset(node->argv, 0, sizeof node->argv);
    node->argc = 0;
}
