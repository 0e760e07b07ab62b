/*  main.c - the qkv-node program: reads the settings, starts the node and
    its REST gateway, and stops both cleanly on SIGINT or SIGTERM.
*/
#include "qkv_config.h"
#include "qkv_gateway.h"
#include "qkv_node.h"
#include "qkv_say.h"

#include <czmq.h>
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

static const char *s_getenv(const char *name) {
    return getenv(name);
}

/* Raises the open-file limit to its hard limit: every client connection
   (REST and zmq-native) and peer link is a descriptor, and a node that
   runs out refuses connections (civetweb and ZeroMQ retry accept(2)). */
static void s_raise_nofile(void) {
    struct rlimit lim;
    if (getrlimit(RLIMIT_NOFILE, &lim) != 0)
        return;
    rlim_t soft = lim.rlim_cur;
    lim.rlim_cur = lim.rlim_max;
    if (soft != lim.rlim_max && setrlimit(RLIMIT_NOFILE, &lim) != 0)
        qkv_warn("cannot raise the open-file limit from %llu to %llu: %s",
                 (unsigned long long)soft, (unsigned long long)lim.rlim_max,
                 strerror(errno));
    else
        qkv_info("open files: up to %llu", (unsigned long long)lim.rlim_cur);
}

/* CPU_LIST: every thread the node starts inherits the main thread's
   CPUs, so they are set before any starts. A CPU this process may not
   use stops the node. */
static int s_pin_cpus(const qkv_config_t *cfg) {
    if (!cfg->cpu_count)
        return 0;
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0) {
        qkv_error("CPU_LIST: cannot read the CPUs this process may use: %s",
                  strerror(errno));
        return -1;
    }
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &cfg->cpu_set) && !CPU_ISSET(c, &allowed)) {
            qkv_error("CPU_LIST (--cpu-list): CPU %d is not one this process "
                      "may use (%d are)",
                      c, CPU_COUNT(&allowed));
            return -1;
        }
    if (sched_setaffinity(0, sizeof(cfg->cpu_set), &cfg->cpu_set) != 0) {
        qkv_error("CPU_LIST (--cpu-list): cannot pin to its CPUs: %s",
                  strerror(errno));
        return -1;
    }
    qkv_info("threads pinned to %zu CPU%s (CPU_LIST)", cfg->cpu_count,
             cfg->cpu_count == 1 ? "" : "s");
    return 0;
}

int main(int argc, char *argv[]) {
    qkv_config_t cfg;
    char err[512];
    int rc = qkv_config_parse(&cfg, argc, argv, s_getenv, err, sizeof(err));
    if (rc != 0) {
        if (rc == 1)
            qkv_config_usage(stdout);
        else
            fprintf(stderr, "qkv-node: %s\n", err);
        qkv_config_clear(&cfg);
        return rc == 1 ? 0 : 2;
    }
    qkv_say_set_id(cfg.node_id);
    s_raise_nofile();
    if (s_pin_cpus(&cfg) != 0) {
        qkv_config_clear(&cfg);
        return 2;
    }

    /* Signals are taken by sigwait below: block them before any thread
       starts, and keep czmq from installing its own handlers. */
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, NULL);
    zsys_handler_set(NULL);

    qkv_node_t *node = qkv_node_new(&cfg, err, sizeof(err));
    qkv_gateway_t *gateway =
        node ? qkv_gateway_new(node, err, sizeof(err)) : NULL;
    if (!gateway) {
        qkv_error("cannot start: %s", err);
        qkv_node_destroy(&node);
        qkv_config_clear(&cfg);
        return 1;
    }
    if (cfg.role == QKV_ROLE_FOLLOWER)
        qkv_info("follower: %s://%s:%d, replication tcp://%s:%d",
                 cfg.tls_cert_file[0] ? "https" : "http", cfg.bind, cfg.port,
                 cfg.bind, cfg.repl_port);
    else
        qkv_info("leader: %s://%s:%d", cfg.tls_cert_file[0] ? "https" : "http",
                 cfg.bind, cfg.port);

    int sig = 0;
    sigwait(&signals, &sig);
    qkv_info("signal %d: stopping", sig);
    qkv_node_hand_over(node); /* a leader with PEERS hands over first */
    qkv_node_stop(node);
    qkv_gateway_destroy(&gateway);
    qkv_node_destroy(&node);
    qkv_config_clear(&cfg);
    zsys_shutdown();
    return 0;
}
