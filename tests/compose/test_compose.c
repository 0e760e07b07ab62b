/*  test_compose.c - the six-container deployment, as a user brings it up.

    Makes the base images when the machine has none (scripts/
    docker-base-images.sh), then runs the repository's own Dockerfile and
    docker-compose.yml unchanged under the compose project "qkvtest" (env
    QKV_COMPOSE_PROJECT), on free host ports, and checks:
    - every container becomes healthy by its own HEALTHCHECK and runs as a
      user other than root;
    - the cluster suite (test_cluster, env QKV_TEST_CLUSTER_BIN) passes
      against the six published REST ports (QKV_TEST_NODES);
    - a follower's redirect can be followed by a client on the host;
    - security is on: REST without the token the keygen service made is
      refused (401) and writes nothing; the qkv tool on the host writes
      over CURVE with the client key copied to QKV_SECRETS_DIR, and a key
      the cluster does not list gets nothing done;
    - with one follower stopped WRITE_QUORUM=3 still commits;
    - `stop leader` (the six run with PEERS): another node leads within
      seconds, in the same cluster and a later term, and commits; the
      stopped node comes back as a follower and holds that write;
    - all six recreated with WRITE_QUORUM=5 (on their volumes) and a
      follower stopped: a write answers 503 and stays invisible; once the
      follower starts again that write commits, every node still has the
      keys written before, and all six hold the same data;
    - the leader's container restarted comes back healthy on its named
      volume (/var/lib/qkv) with a key written before; the cluster has
      the same cluster_id in a later term, every node follows its leader,
      and a write commits.
    The project is taken down (`down -v`) at the end, when a check fails,
    on SIGINT, SIGTERM and SIGHUP, and at an internal deadline that comes
    before ctest's timeout; leftovers of a killed run are removed first.

    No Docker engine: skipped (exit 77), and a failure when CI=true.
    Compose command: `docker compose` when the plugin exists, else
    `docker-compose`; env QKV_COMPOSE overrides (e.g. "docker-compose").
*/
#include "kit.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NODES 6
#define DEADLINE_S 840     /* before ctest's TIMEOUT of 900 */
#define HEALTHY_MS 180000  /* six containers starting on two cores */
#define REPL_WAIT_MS 60000 /* a restarted follower catching up */
#define MAX_ARGV 32

static const char *s_services[NODES] = {"leader",    "follower1", "follower2",
                                        "follower3", "follower4", "follower5"};
static const char *s_port_vars[NODES] = {
    "QKV_LEADER_PORT",    "QKV_FOLLOWER1_PORT", "QKV_FOLLOWER2_PORT",
    "QKV_FOLLOWER3_PORT", "QKV_FOLLOWER4_PORT", "QKV_FOLLOWER5_PORT"};
static const char *s_client_port_vars[NODES] = {
    "QKV_LEADER_CLIENT_PORT",    "QKV_FOLLOWER1_CLIENT_PORT",
    "QKV_FOLLOWER2_CLIENT_PORT", "QKV_FOLLOWER3_CLIENT_PORT",
    "QKV_FOLLOWER4_CLIENT_PORT", "QKV_FOLLOWER5_CLIENT_PORT"};

static char s_source_dir[1024];     /* the repository: Dockerfile, compose */
static char s_compose_file[1100];   /* its docker-compose.yml */
static char s_project[64];          /* compose project name */
static char *s_compose_cmd[4];      /* "docker" "compose" or "docker-compose" */
static size_t s_compose_words;      /* words used in s_compose_cmd */
static char *s_down_argv[MAX_ARGV]; /* prebuilt for the signal handler */
static volatile sig_atomic_t s_is_up; /* the project may have containers */
static volatile pid_t s_child;        /* the command s_run waits for, or 0 */
static kit_cluster_t s_cluster;       /* the six published REST URLs */
static char s_tag[9];                 /* per-run key prefix */
static char s_secrets[1024];          /* QKV_SECRETS_DIR of the project */

/*  ---------------------------------------------------------------------
    Running commands */

static void s_print_argv(char *const argv[]) {
    printf("+");
    for (size_t i = 0; argv[i]; i++)
        printf(" %s", argv[i]);
    printf("\n");
    fflush(stdout);
}

/* Runs argv (argv[0] looked up in PATH). With out, stdout is captured into
   out (NUL-terminated, trailing newlines cut, truncated to out_size);
   without, it goes to ours. quiet sends stdout and stderr to /dev/null.
   Returns the exit code, 128 + signal, or -1 when it could not run. */
static int s_run(char *const argv[], char *out, size_t out_size, bool quiet) {
    int pipefd[2] = {-1, -1};
    if (!quiet)
        s_print_argv(argv);
    fflush(stdout);
    fflush(stderr);
    if (out && pipe(pipefd) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        if (quiet) {
            int null = open("/dev/null", O_WRONLY);
            dup2(null, STDOUT_FILENO);
            dup2(null, STDERR_FILENO);
        }
        if (out) {
            dup2(pipefd[1], STDOUT_FILENO);
            close(pipefd[0]);
            close(pipefd[1]);
        }
        execvp(argv[0], argv);
        _exit(127);
    }
    s_child = pid;
    if (out) {
        close(pipefd[1]);
        size_t used = 0;
        ssize_t n;
        char sink[512];
        while ((n = read(pipefd[0], used + 1 < out_size ? out + used : sink,
                         used + 1 < out_size ? out_size - used - 1
                                             : sizeof sink)) != 0) {
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                break;
            if (used + 1 < out_size)
                used += (size_t)n;
        }
        close(pipefd[0]);
        out[used] = '\0';
        while (used && (out[used - 1] == '\n' || out[used - 1] == '\r'))
            out[--used] = '\0';
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) {
            s_child = 0;
            return -1;
        }
    s_child = 0;
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return 128 + WTERMSIG(status);
}

/* Fills argv from index at with the compose command, -f FILE -p PROJECT
   and the arguments in ap (up to a NULL). */
static void s_compose_argv(char **argv, size_t at, va_list ap) {
    size_t argc = at;
    for (size_t i = 0; i < s_compose_words; i++)
        argv[argc++] = s_compose_cmd[i];
    argv[argc++] = "-f";
    argv[argc++] = s_compose_file;
    argv[argc++] = "-p";
    argv[argc++] = s_project;
    char *arg;
    while ((arg = va_arg(ap, char *)) && argc + 1 < MAX_ARGV)
        argv[argc++] = arg;
    argv[argc] = NULL;
}

/* Runs the compose command with the given arguments (up to a NULL); out
   and quiet as for s_run (an int: va_start's parameter must not be one
   that default promotions change). */
static int s_compose(char *out, size_t out_size, int quiet, ...) {
    char *argv[MAX_ARGV];
    va_list ap;
    va_start(ap, quiet);
    s_compose_argv(argv, 0, ap);
    va_end(ap);
    return s_run(argv, out, out_size, quiet);
}

/* Runs the compose command with its stdout and stderr sent to path. */
static int s_compose_to_file(const char *path, ...) {
    char *argv[MAX_ARGV] = {"sh", "-c", "f=$1; shift; exec \"$@\" >\"$f\" 2>&1",
                            "sh", (char *)path};
    va_list ap;
    va_start(ap, path);
    s_compose_argv(argv, 5, ap);
    va_end(ap);
    return s_run(argv, NULL, 0, true);
}

/* The container id of a service, "" when it has none. */
static void s_container_of(const char *service, char *id, size_t size) {
    if (s_compose(id, size, true, "ps", "-a", "-q", service, NULL) != 0)
        id[0] = '\0';
}

/*  ---------------------------------------------------------------------
    Bringing the project up and down */

/* Takes the project down: containers, network, volumes. Async-signal-safe
   (fork, exec, wait with a prebuilt argv) so the signal handler can call
   it. */
static void s_down_now(void) {
    pid_t pid = fork();
    if (pid == 0) {
        execvp(s_down_argv[0], s_down_argv);
        _exit(127);
    }
    if (pid > 0)
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
}

/* Saves every container's log in the log directory; with tail, prints
   the last lines of each too. */
static void s_save_logs(bool tail) {
    char path[1024];
    snprintf(path, sizeof path, "%s/test_compose.containers.log",
             kit_log_dir());
    s_compose_to_file(path, "logs", "--no-color", "--timestamps", NULL);
    if (tail)
        s_compose(NULL, 0, false, "logs", "--no-color", "--tail=30", NULL);
    printf("container logs: %s\n", path);
}

static void s_teardown(void) {
    if (!s_is_up)
        return;
    s_print_argv(s_down_argv);
    s_down_now();
    s_is_up = 0;
}

static void s_on_signal(int sig) {
    static const char msg[] = "\ntest_compose: signal or deadline, "
                              "taking the compose project down\n";
    ssize_t ignored = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)ignored;
    if (s_child > 0)
        kill(s_child, SIGTERM); /* test_cluster, or a compose command */
    if (s_is_up)
        s_down_now();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void s_install_handlers(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGALRM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    atexit(s_teardown);
    alarm(DEADLINE_S);
}

/* Picks the compose command: QKV_COMPOSE, else `docker compose` when the
   plugin answers, else `docker-compose`. Skips when none works. */
static void s_find_compose(void) {
    static char words[256];
    const char *env = getenv("QKV_COMPOSE");
    if (env && *env) {
        snprintf(words, sizeof words, "%s", env);
        char *save = NULL;
        for (char *w = strtok_r(words, " ", &save); w && s_compose_words < 3;
             w = strtok_r(NULL, " ", &save))
            s_compose_cmd[s_compose_words++] = w;
    } else {
        char *v2[] = {"docker", "compose", "version", NULL};
        if (s_run(v2, NULL, 0, true) == 0) {
            s_compose_cmd[s_compose_words++] = "docker";
            s_compose_cmd[s_compose_words++] = "compose";
        } else {
            s_compose_cmd[s_compose_words++] = "docker-compose";
        }
    }
    char *probe[6];
    size_t n = 0;
    for (size_t i = 0; i < s_compose_words; i++)
        probe[n++] = s_compose_cmd[i];
    probe[n++] = "version";
    probe[n] = NULL;
    if (s_run(probe, NULL, 0, true) != 0)
        kit_skip("a Docker engine answers but neither `docker compose` nor "
                 "docker-compose works (set QKV_COMPOSE)",
                 true);
}

/* Reads the settings and prepares what teardown needs; skips without an
   engine. */
static void s_prepare(void) {
    char *info[] = {"docker", "info", NULL};
    if (s_run(info, NULL, 0, true) != 0)
        kit_skip("no Docker engine answers (`docker info` failed); the "
                 "compose deployment was not tested",
                 true);
    s_find_compose();

    const char *src = getenv("QKV_SOURCE_DIR");
    if (!src || !*src)
        kit_skip("QKV_SOURCE_DIR is not set (run through ctest)", true);
    snprintf(s_source_dir, sizeof s_source_dir, "%s", src);
    snprintf(s_compose_file, sizeof s_compose_file, "%s/docker-compose.yml",
             s_source_dir);
    const char *project = getenv("QKV_COMPOSE_PROJECT");
    snprintf(s_project, sizeof s_project, "%s",
             project && *project ? project : "qkvtest");

    size_t argc = 0;
    for (size_t i = 0; i < s_compose_words; i++)
        s_down_argv[argc++] = s_compose_cmd[i];
    static char *tail[] = {"-f", s_compose_file,     "-p", s_project, "down",
                           "-v", "--remove-orphans", "-t", "5",       NULL};
    for (size_t i = 0; tail[i]; i++)
        s_down_argv[argc++] = tail[i];
    s_down_argv[argc] = NULL;
}

/* One run per project name on this machine at a time: a second run waits
   (its containers, network and image tag would be the first one's). The
   lock is held until the process exits. */
static int s_lock(void) {
    char path[256];
    snprintf(path, sizeof path, "/tmp/qkv-test-compose-%s.lock", s_project);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) {
        perror(path);
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        printf("another test_compose run holds %s: waiting\n", path);
        if (flock(fd, LOCK_EX) != 0) {
            perror(path);
            return -1;
        }
    }
    return 0;
}

/* Host ports: each QKV_*_PORT that is set, else a free one. The cluster
   gets the six base URLs, and QKV_TEST_NODES lists them for test_cluster. */
static int s_choose_ports(void) {
    char nodes[NODES * 64] = "";
    for (size_t i = 0; i < NODES; i++) {
        const char *set = getenv(s_port_vars[i]);
        int port = set && *set ? atoi(set) : kit_free_port();
        if (port <= 0)
            return -1;
        char text[16];
        snprintf(text, sizeof text, "%d", port);
        setenv(s_port_vars[i], text, 1);
        /* the zmq-native client ports are published too: keep them free */
        const char *cset = getenv(s_client_port_vars[i]);
        int cport = cset && *cset ? atoi(cset) : kit_free_port();
        if (cport <= 0)
            return -1;
        snprintf(text, sizeof text, "%d", cport);
        setenv(s_client_port_vars[i], text, 1);
        size_t used = strlen(nodes);
        snprintf(nodes + used, sizeof nodes - used, "%shttp://127.0.0.1:%d",
                 i ? "," : "", port);
    }
    setenv("QKV_TEST_NODES", nodes, 1);
    printf("nodes: %s\n", nodes);
    return kit_cluster_from_env(&s_cluster, NODES) == 1 ? 0 : -1;
}

/* The docker health of a service's container: "healthy", "starting",
   "unhealthy", "exited", ... ("" when it has no container). */
static void s_health_of(const char *service, char *state, size_t size) {
    char id[128];
    state[0] = '\0';
    if (s_compose(id, sizeof id, true, "ps", "-a", "-q", service, NULL) != 0 ||
        !id[0])
        return;
    char *argv[] = {"docker",
                    "inspect",
                    "-f",
                    "{{if ne .State.Status \"running\"}}{{.State.Status}}"
                    "{{else if .State.Health}}{{.State.Health.Status}}"
                    "{{else}}no-healthcheck{{end}}",
                    id,
                    NULL};
    s_run(argv, state, size, true);
}

typedef struct {
    const char *service;
    char state[64];
} s_wait_t;

static bool s_is_healthy(void *arg) {
    s_wait_t *w = arg;
    s_health_of(w->service, w->state, sizeof w->state);
    return strcmp(w->state, "healthy") == 0;
}

/* Waits until docker calls the service's container healthy. */
static int s_wait_healthy(const char *service, int timeout_ms) {
    s_wait_t w = {service, ""};
    if (kit_poll_until(timeout_ms, s_is_healthy, &w))
        return 0;
    fprintf(stderr, "test_compose: %s is \"%s\", not healthy, after %d ms\n",
            service, w.state, timeout_ms);
    return -1;
}

static int s_wait_all_healthy(void) {
    int64_t deadline = kit_now_ms() + HEALTHY_MS;
    for (size_t i = 0; i < NODES; i++) {
        int64_t left = deadline - kit_now_ms();
        if (s_wait_healthy(s_services[i], left > 0 ? (int)left : 1) != 0)
            return -1;
    }
    /* Healthy inside; now through the published ports too. */
    return kit_cluster_wait_healthy(&s_cluster, 30000);
}

/* Security is on in the compose file: REST needs the token the keygen
   service made. Every kit request of this suite and of test_cluster (run
   as a child) sends it (QKV_TEST_TOKEN). */
static int s_use_token(void) {
    char path[1200], token[300] = "";
    snprintf(path, sizeof path, "%s/token", s_secrets);
    FILE *f = fopen(path, "r");
    if (f) {
        if (!fgets(token, sizeof token, f))
            token[0] = '\0';
        fclose(f);
    }
    token[strcspn(token, "\r\n")] = '\0';
    if (strlen(token) < 16) {
        fprintf(stderr, "test_compose: no REST token in %s\n", path);
        return -1;
    }
    setenv("QKV_TEST_TOKEN", token, 1);
    return 0;
}

static int s_up(void) {
    int64_t started = kit_now_ms();
    kit_random_tag(s_tag);
    /* The compose file's own defaults, not the caller's experiments. */
    unsetenv("WRITE_QUORUM");
    unsetenv("MIN_DELAY_MS");
    unsetenv("MAX_DELAY_MS");
    unsetenv("REPLICATION_TIMEOUT_MS");
    setenv("QKV_PUBLISH_ADDR", "127.0.0.1", 1);
    setenv("QKV_PUBLIC_HOST", "127.0.0.1", 1);
    /* Its own image tag: a user's qkv-node:latest stays as it is. */
    char image[128];
    snprintf(image, sizeof image, "qkv-node:%s", s_project);
    setenv("QKV_IMAGE", image, 1);
    if (s_lock() != 0 || s_choose_ports() != 0)
        return -1;
    /* The keygen service copies the client key, the REST token and the
       nodes' public keys here (not into the repository's ./secrets). */
    snprintf(s_secrets, sizeof s_secrets, "%s/compose-secrets-%s",
             kit_log_dir(), s_project);
    kit_rmtree(s_secrets);
    if (mkdir(s_secrets, 0700) != 0) {
        perror(s_secrets);
        return -1;
    }
    setenv("QKV_SECRETS_DIR", s_secrets, 1);

    char script[1200];
    snprintf(script, sizeof script, "%s/scripts/docker-base-images.sh",
             s_source_dir);
    char *base[] = {script, NULL};
    if (s_run(base, NULL, 0, false) != 0) {
        fprintf(stderr, "test_compose: the base images could not be made\n");
        return -1;
    }
    printf("base images ready after %.1f s\n",
           (kit_now_ms() - started) / 1000.0);

    s_is_up = 1;
    s_down_now(); /* leftovers of a run that was killed */
    /* `up --build` in two steps, so that a failed build leaves no
       container behind (the legacy builder keeps the failed one). */
    if (s_compose(NULL, 0, false, "build", "--force-rm", NULL) != 0) {
        fprintf(stderr, "test_compose: the image did not build\n");
        return -1;
    }
    if (s_compose(NULL, 0, false, "up", "-d", NULL) != 0) {
        fprintf(stderr, "test_compose: compose up failed\n");
        s_save_logs(true);
        return -1;
    }
    printf("built and started after %.1f s\n",
           (kit_now_ms() - started) / 1000.0);
    if (s_use_token() != 0) {
        s_save_logs(true);
        return -1;
    }
    if (s_wait_all_healthy() != 0) {
        s_save_logs(true);
        return -1;
    }
    printf("six containers healthy after %.1f s\n",
           (kit_now_ms() - started) / 1000.0);
    return 0;
}

static int s_down(void) {
    s_save_logs(CU_get_number_of_failures() > 0);
    s_teardown();
    if (s_secrets[0])
        kit_rmtree(s_secrets);
    /* The images earlier runs built and this one replaced. */
    char *prune[] = {
        "docker", "image",    "prune",
        "-f",     "--filter", "label=org.opencontainers.image.title=qkv-node",
        NULL};
    s_run(prune, NULL, 0, true);
    return 0;
}

/*  ---------------------------------------------------------------------
    Helpers for the checks */

/* The node whose /health says it leads and serves (with elections any
   of the six may), waiting up to REPL_WAIT_MS; -1 when none does. */
static int s_leader_index(void) {
    int64_t deadline = kit_now_ms() + REPL_WAIT_MS;
    do {
        for (size_t i = 0; i < NODES; i++) {
            long status = 0;
            json_t *h = kit_qkv_health(s_cluster.nodes[i].url, &status);
            const char *role = kit_json_str(h, "role");
            bool leads = status == 200 && role && !strcmp(role, "leader") &&
                         json_is_true(json_object_get(h, "serving"));
            json_decref(h);
            if (leads)
                return (int)i;
        }
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    } while (kit_now_ms() < deadline);
    return -1;
}

static const char *leader(void) {
    int i = s_leader_index();
    return s_cluster.nodes[i >= 0 ? i : 0].url;
}

/* A node that does not lead now (the one after the leader). */
static size_t s_follower_index(void) {
    int i = s_leader_index();
    return (size_t)(i >= 0 ? i + 1 : 1) % NODES;
}

static void key_of(char *key, size_t size, const char *name) {
    snprintf(key, size, "c%s-%s", s_tag, name);
}

/* POSTs key=value to the leader's /put; returns the HTTP status and sets
 *index from the answer (0 when absent). */
static long write_key(const char *key, const char *value, uint64_t *index,
                      const char **status_field, json_t **answer) {
    long status = 0;
    *answer = kit_qkv_write(leader(), "/put", key, value, &status, NULL);
    *index = 0;
    kit_json_u64(*answer, "index", index);
    *status_field = kit_json_str(*answer, "status");
    return status;
}

static long read_status(const char *base, const char *key) {
    long status = 0;
    json_t *answer = kit_qkv_read(base, "/get", key, &status);
    json_decref(answer);
    return status;
}

typedef struct {
    const char *base;
    const char *key;
    const char *value;
} s_holds_t;

static bool s_holds(void *arg) {
    s_holds_t *h = arg;
    return kit_qkv_holds(h->base, h->key, h->value, 0);
}

/* A node's /health cluster_id (into id, "" when absent) and term (0 when
   absent); returns the HTTP status. */
static long cluster_and_term_of(const char *base, char *id, size_t size,
                                uint64_t *term) {
    long status = 0;
    json_t *health = kit_qkv_health(base, &status);
    const char *cluster = kit_json_str(health, "cluster_id");
    snprintf(id, size, "%s", cluster ? cluster : "");
    *term = 0;
    kit_json_u64(health, "term", term);
    json_decref(health);
    return status;
}

typedef struct {
    const char *base;
    const char *id; /* the leader's cluster_id */
    uint64_t term;  /* and term */
} s_follows_t;

/* The node reports the leader's cluster_id and term. */
static bool s_follows(void *arg) {
    s_follows_t *f = arg;
    char id[64];
    uint64_t term;
    return cluster_and_term_of(f->base, id, sizeof id, &term) == 200 &&
           strcmp(id, f->id) == 0 && term == f->term;
}

typedef struct {
    size_t followers;
    char state[128]; /* what was missing on the last try */
} s_connected_t;

/* The leader's /health lists every follower as connected. */
static bool s_all_connected(void *arg) {
    s_connected_t *c = arg;
    long status;
    json_t *health = kit_qkv_health(leader(), &status);
    json_t *list = json_object_get(health, "followers");
    size_t connected = 0;
    for (size_t i = 0; i < json_array_size(list); i++)
        if (json_is_true(json_object_get(json_array_get(list, i), "connected")))
            connected++;
    snprintf(c->state, sizeof c->state, "status %ld, %zu of %zu connected",
             status, connected, c->followers);
    json_decref(health);
    return status == 200 && connected == c->followers;
}

/*  ---------------------------------------------------------------------
    Tests, in order: each scenario step builds on the one before. */

static void test_containers_healthy_and_not_root(void) {
    for (size_t i = 0; i < NODES; i++) {
        char state[64], id[128], uid[32] = "";
        s_health_of(s_services[i], state, sizeof state);
        KIT_ASSERT_STR(state, "healthy");
        s_container_of(s_services[i], id, sizeof id);
        char *argv[] = {"docker", "exec", id, "id", "-u", NULL};
        CU_ASSERT_EQUAL(s_run(argv, uid, sizeof uid, true), 0);
        CU_ASSERT(uid[0] != '\0' && strcmp(uid, "0") != 0);
    }
}

static void test_cluster_suite_passes(void) {
    const char *bin = getenv("QKV_TEST_CLUSTER_BIN");
    CU_ASSERT_FATAL(bin != NULL && access(bin, X_OK) == 0);
    printf("\n---- test_cluster against the containers ----\n");
    char *argv[] = {(char *)bin, NULL};
    int rc = s_run(argv, NULL, 0, false);
    printf("---- test_cluster exit code %d ----\n", rc);
    CU_ASSERT_EQUAL(rc, 0);
}

static void test_redirect_reaches_leader_from_host(void) {
    char key[64], body[160], url[512];
    key_of(key, sizeof key, "redirected");
    snprintf(body, sizeof body, "{\"key\":\"%s\",\"value\":\"r\"}", key);
    size_t f = s_follower_index();
    snprintf(url, sizeof url, "%s/put", s_cluster.nodes[f].url);
    kit_resp_t resp;
    CU_ASSERT_EQUAL_FATAL(kit_http("POST", url, body, strlen(body), &resp), 0);
    CU_ASSERT_EQUAL(resp.status, 307);
    CU_ASSERT_FATAL(resp.location != NULL);
    printf("\n%s redirects to %s\n", s_services[f], resp.location);
    kit_resp_t again;
    CU_ASSERT_EQUAL_FATAL(
        kit_http("POST", resp.location, body, strlen(body), &again), 0);
    CU_ASSERT_EQUAL(again.status, 200);
    kit_resp_free(&again);
    kit_resp_free(&resp);
    CU_ASSERT(kit_qkv_holds(leader(), key, "r", 0));
}

/* Security as the compose file sets it: REST without the token is
   refused and writes nothing; the qkv tool on the host writes with the
   client key the keygen service copied out, and fails with a key of its
   own making. */
static void test_security_is_on(void) {
    char key[64], body[160], url[512];
    key_of(key, sizeof key, "secure");
    snprintf(body, sizeof body, "{\"key\":\"%s\",\"value\":\"s\"}", key);
    snprintf(url, sizeof url, "%s/put", leader());
    kit_http_set_token(NULL);
    kit_resp_t resp;
    CU_ASSERT_EQUAL_FATAL(kit_http("POST", url, body, strlen(body), &resp), 0);
    CU_ASSERT_EQUAL(resp.status, 401);
    kit_resp_free(&resp);
    kit_http_set_token(getenv("QKV_TEST_TOKEN"));
    long status = 0;
    json_t *r = kit_qkv_read(leader(), "/get", key, &status);
    CU_ASSERT_EQUAL(status, 404);
    json_decref(r);

    /* the qkv tool: beside the node's build (client/qkv) */
    char qkv[1100], endpoint[64], client_key[1100], server_key[1100];
    snprintf(qkv, sizeof qkv, "%s", kit_node_bin());
    char *slash = strrchr(qkv, '/');
    CU_ASSERT_FATAL(slash != NULL);
    *slash = '\0';
    slash = strrchr(qkv, '/');
    CU_ASSERT_FATAL(slash != NULL);
    strcpy(slash, "/client/qkv");
    const char *cport = getenv(s_client_port_vars[0]);
    snprintf(endpoint, sizeof endpoint, "tcp://127.0.0.1:%s",
             cport ? cport : "7000");
    snprintf(client_key, sizeof client_key, "%s/client.key", s_secrets);
    snprintf(server_key, sizeof server_key, "%s/leader.pub", s_secrets);
    char *put[] = {qkv,        "-e",  endpoint, "-k", client_key, "-s",
                   server_key, "put", key,      "z",  NULL};
    CU_ASSERT_EQUAL(s_run(put, NULL, 0, false), 0);
    CU_ASSERT(kit_qkv_holds(leader(), key, "z", 0));
    /* a key pair the cluster does not list */
    char stranger[1100];
    snprintf(stranger, sizeof stranger, "%s/stranger", s_secrets);
    char *keygen[] = {qkv, "keygen", stranger, NULL};
    CU_ASSERT_EQUAL_FATAL(s_run(keygen, NULL, 0, true), 0);
    strcat(stranger, ".key");
    char out[512] = "";
    char *denied[] = {qkv,  "-t",       "1500", "-e", endpoint, "-k", stranger,
                      "-s", server_key, "put",  key,  "y",      NULL};
    CU_ASSERT_NOT_EQUAL(s_run(denied, out, sizeof out, false), 0);
    CU_ASSERT(kit_qkv_holds(leader(), key, "z", 0));
}

static char s_quorum3_key[64];

static void test_quorum_3_commits_with_a_follower_stopped(void) {
    CU_ASSERT_EQUAL_FATAL(
        s_compose(NULL, 0, false, "stop", "-t", "5", "follower3", NULL), 0);
    char state[64];
    s_health_of("follower3", state, sizeof state);
    KIT_ASSERT_STR(state, "exited");

    char *key = s_quorum3_key;
    key_of(key, sizeof s_quorum3_key, "quorum3");
    uint64_t index;
    const char *status_field;
    json_t *answer;
    long status = write_key(key, "three", &index, &status_field, &answer);
    CU_ASSERT_EQUAL(status, 200);
    KIT_ASSERT_STR(status_field, "success");
    CU_ASSERT(index > 0);
    json_decref(answer);
    CU_ASSERT(kit_qkv_holds(leader(), key, "three", 0));
}

/* docker compose stop leader: the others elect one of them, which takes
   writes; the stopped node comes back as a follower with everything. */
static void test_stopping_the_leader_elects_another(void) {
    int old = s_leader_index();
    CU_ASSERT_FATAL(old >= 0);
    char old_id[64];
    uint64_t old_term;
    CU_ASSERT_EQUAL_FATAL(cluster_and_term_of(s_cluster.nodes[old].url, old_id,
                                              sizeof old_id, &old_term),
                          200);
    int64_t t0 = kit_now_ms();
    CU_ASSERT_EQUAL_FATAL(
        s_compose(NULL, 0, false, "stop", "-t", "5", s_services[old], NULL), 0);
    int next = s_leader_index();
    printf("\nstopped %s: %s leads after %lld ms\n", s_services[old],
           next >= 0 ? s_services[next] : "nobody",
           (long long)(kit_now_ms() - t0));
    CU_ASSERT_FATAL(next >= 0 && next != old);
    char id[64];
    uint64_t term;
    CU_ASSERT_EQUAL(
        cluster_and_term_of(s_cluster.nodes[next].url, id, sizeof id, &term),
        200);
    KIT_ASSERT_STR(id, old_id);
    CU_ASSERT(term > old_term);
    /* WRITE_QUORUM=3 with two of six down (follower3, the old leader):
       the new leader and three followers hold it */
    char key[64];
    key_of(key, sizeof key, "new-leader");
    uint64_t index;
    const char *status_field;
    json_t *answer;
    CU_ASSERT_EQUAL(write_key(key, "taken", &index, &status_field, &answer),
                    200);
    json_decref(answer);
    CU_ASSERT(s_quorum3_key[0] != '\0' &&
              kit_qkv_holds(leader(), s_quorum3_key, "three", 0));
    /* the old leader and follower3 come back and catch up */
    CU_ASSERT_EQUAL_FATAL(
        s_compose(NULL, 0, false, "start", s_services[old], "follower3", NULL),
        0);
    CU_ASSERT_EQUAL_FATAL(s_wait_healthy(s_services[old], HEALTHY_MS), 0);
    CU_ASSERT_EQUAL_FATAL(s_wait_healthy("follower3", HEALTHY_MS), 0);
    s_holds_t h = {s_cluster.nodes[old].url, key, "taken"};
    CU_ASSERT(kit_poll_until(REPL_WAIT_MS, s_holds, &h));
    long status;
    json_t *health = kit_qkv_health(s_cluster.nodes[old].url, &status);
    KIT_ASSERT_STR(kit_json_str(health, "role"), "follower");
    KIT_ASSERT_STR(kit_json_str(health, "leader_id"), s_services[next]);
    json_decref(health);
}

static char s_pending_key[64];
static size_t s_stopped; /* the follower stopped for the WRITE_QUORUM=5 tests */

static void test_quorum_5_answers_503_while_a_follower_is_down(void) {
    /* Changing the quorum means every node: all six again with
       WRITE_QUORUM=5, as the README says (down keeps the volumes). */
    CU_ASSERT_EQUAL_FATAL(s_compose(NULL, 0, false, "down", NULL), 0);
    setenv("WRITE_QUORUM", "5", 1);
    int rc = s_compose(NULL, 0, false, "up", "-d", NULL);
    unsetenv("WRITE_QUORUM");
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_EQUAL_FATAL(s_wait_all_healthy(), 0);
    int l = s_leader_index();
    CU_ASSERT_FATAL(l >= 0);
    s_stopped = s_follower_index();
    CU_ASSERT_EQUAL_FATAL(s_compose(NULL, 0, false, "stop", "-t", "5",
                                    s_services[s_stopped], NULL),
                          0);
    key_of(s_pending_key, sizeof s_pending_key, "pending");
    uint64_t index;
    const char *status_field;
    json_t *answer;
    int64_t sent = kit_now_ms();
    long status =
        write_key(s_pending_key, "five", &index, &status_field, &answer);
    int64_t took = kit_now_ms() - sent;
    printf("\nWRITE_QUORUM=5 with %s down: %ld after %lld ms\n",
           s_services[s_stopped], status, (long long)took);
    CU_ASSERT_EQUAL(status, 503);
    KIT_ASSERT_STR(status_field, "quorum_not_reached");
    KIT_ASSERT_STR(kit_json_str(answer, "key"), s_pending_key);
    CU_ASSERT(index > 0);
    /* The compose file's default REPLICATION_TIMEOUT_MS is 5000. */
    CU_ASSERT(took >= 4500);
    json_decref(answer);
    /* Not committed, so visible nowhere. */
    CU_ASSERT_EQUAL(read_status(leader(), s_pending_key), 404);
    CU_ASSERT_EQUAL(read_status(s_cluster.nodes[(s_stopped + 1) % NODES].url,
                                s_pending_key),
                    404);
}

static void test_pending_write_commits_when_the_follower_returns(void) {
    CU_ASSERT_FATAL(s_pending_key[0] != '\0');
    CU_ASSERT_EQUAL_FATAL(
        s_compose(NULL, 0, false, "start", s_services[s_stopped], NULL), 0);
    CU_ASSERT_EQUAL_FATAL(s_wait_healthy(s_services[s_stopped], HEALTHY_MS), 0);

    s_holds_t h = {leader(), s_pending_key, "five"};
    CU_ASSERT_FATAL(kit_poll_until(REPL_WAIT_MS, s_holds, &h));
    /* Every container recreated on its volume kept what it held. */
    CU_ASSERT(s_quorum3_key[0] != '\0' &&
              kit_qkv_holds(leader(), s_quorum3_key, "three", 0));
    uint64_t index = 0;
    CU_ASSERT(kit_qkv_settled(leader(), REPL_WAIT_MS, &index));
    for (size_t i = 0; i < NODES; i++) {
        h.base = s_cluster.nodes[i].url;
        CU_ASSERT(kit_poll_until(REPL_WAIT_MS, s_holds, &h));
        if (strcmp(leader(), s_cluster.nodes[i].url) != 0)
            CU_ASSERT(kit_qkv_wait_same_dump(leader(), s_cluster.nodes[i].url,
                                             REPL_WAIT_MS));
    }

    /* With all six back, WRITE_QUORUM=5 commits. */
    char key[64];
    key_of(key, sizeof key, "all-five");
    const char *status_field;
    json_t *answer;
    CU_ASSERT_EQUAL(write_key(key, "5", &index, &status_field, &answer), 200);
    KIT_ASSERT_STR(status_field, "success");
    json_decref(answer);
}

static void test_leader_restart_keeps_data(void) {
    char key[64];
    key_of(key, sizeof key, "restart");
    uint64_t index;
    const char *status_field;
    json_t *answer;
    CU_ASSERT_EQUAL_FATAL(
        write_key(key, "kept", &index, &status_field, &answer), 200);
    json_decref(answer);

    int old = s_leader_index();
    CU_ASSERT_FATAL(old >= 0);
    char old_id[64];
    uint64_t old_term;
    CU_ASSERT_EQUAL_FATAL(cluster_and_term_of(s_cluster.nodes[old].url, old_id,
                                              sizeof old_id, &old_term),
                          200);
    CU_ASSERT_FATAL(old_id[0] != '\0' && old_term > 0);

    CU_ASSERT_EQUAL_FATAL(
        s_compose(NULL, 0, false, "restart", "-t", "5", s_services[old], NULL),
        0);
    CU_ASSERT_EQUAL_FATAL(s_wait_healthy(s_services[old], HEALTHY_MS), 0);
    CU_ASSERT_EQUAL_FATAL(kit_node_wait_healthy(&s_cluster.nodes[old], 30000),
                          0);

    /* The key, with its value, from the restarted node itself. */
    s_holds_t h = {s_cluster.nodes[old].url, key, "kept"};
    CU_ASSERT(kit_poll_until(REPL_WAIT_MS, s_holds, &h));

    /* The same cluster, in a later term, on disk. */
    char id[64];
    uint64_t term;
    CU_ASSERT_EQUAL(cluster_and_term_of(leader(), id, sizeof id, &term), 200);
    printf("\n%s restarted: cluster_id %s -> %s, term %llu -> %llu\n",
           s_services[old], old_id, id, (unsigned long long)old_term,
           (unsigned long long)term);
    KIT_ASSERT_STR(id, old_id);
    CU_ASSERT(term > old_term);
    long status;
    json_t *health = kit_qkv_health(leader(), &status);
    CU_ASSERT(json_is_true(json_object_get(health, "durable")));
    json_decref(health);

    /* Every node follows the leader of that term, and a write commits
       (WRITE_QUORUM=5: every other node acks). */
    for (size_t i = 0; i < NODES; i++) {
        s_follows_t f = {s_cluster.nodes[i].url, id, term};
        CU_ASSERT(kit_poll_until(REPL_WAIT_MS, s_follows, &f));
    }
    s_connected_t c = {NODES - 1, ""};
    bool connected = kit_poll_until(REPL_WAIT_MS, s_all_connected, &c);
    if (!connected)
        fprintf(stderr, "\n  after the restart: %s\n", c.state);
    CU_ASSERT(connected);
    key_of(key, sizeof key, "after-restart");
    CU_ASSERT_EQUAL(write_key(key, "new", &index, &status_field, &answer), 200);
    KIT_ASSERT_STR(status_field, "success");
    json_decref(answer);
}

/*  ---------------------------------------------------------------------
    Setup */

static int s_add_suites(void) {
    static const kit_test_t tests[] = {
        KIT_TEST(test_containers_healthy_and_not_root),
        KIT_TEST(test_cluster_suite_passes),
        KIT_TEST(test_redirect_reaches_leader_from_host),
        KIT_TEST(test_security_is_on),
        KIT_TEST(test_quorum_3_commits_with_a_follower_stopped),
        KIT_TEST(test_stopping_the_leader_elects_another),
        KIT_TEST(test_quorum_5_answers_503_while_a_follower_is_down),
        KIT_TEST(test_pending_write_commits_when_the_follower_returns),
        KIT_TEST(test_leader_restart_keeps_data),
        KIT_TESTS_END};
    return kit_add_suite("compose", s_up, s_down, tests) ? 0 : -1;
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    s_prepare();
    s_install_handlers();
    return kit_run(s_add_suites);
}
