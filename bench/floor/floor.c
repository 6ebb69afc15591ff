/*
 * floor: the kernel's price of a RESP request on loopback.
 *
 * A single-threaded epoll server that does no work: it splits the input
 * into RESP multibulk frames and answers each with a canned reply -- GET
 * with a 128-byte bulk string (what redis-benchmark -d 128 gets back),
 * SET with +OK, anything else (redis-benchmark's CONFIG GET) with an empty
 * array. One read and one write per ready connection per loop iteration,
 * like redis-server. Its CPU time per request under the same
 * redis-benchmark run is the floor under any server's (bench/floor/run.sh).
 *
 *   cc -O2 -o floor floor.c && ./floor PORT
 *
 * Not a server for anything else: no inline commands, a frame larger than
 * the buffer closes the connection.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF (64 * 1024)
#define OUT (BUF * 8)

struct conn {
    int fd;
    size_t len;
    char in[BUF];
    char out[OUT];
};

static char get_reply[6 + 128 + 2];

/* Length of the first complete frame in p[0..n), 0 if incomplete, -1 if bad.
 * *first is set to the first byte of the command name. */
static long frame(const char *p, size_t n, char *first) {
    size_t i = 0;
    if (n < 4 || p[0] != '*') return n < 4 ? 0 : -1;
    long args = 0;
    for (i = 1; i < n && p[i] != '\r'; i++) args = args * 10 + (p[i] - '0');
    if (i + 1 >= n) return 0;
    i += 2;
    for (long a = 0; a < args; a++) {
        if (i >= n) return 0;
        if (p[i] != '$') return -1;
        long len = 0;
        for (i++; i < n && p[i] != '\r'; i++) len = len * 10 + (p[i] - '0');
        if (i + 1 >= n) return 0;
        i += 2;
        if (a == 0 && i < n) *first = p[i];
        if (i + (size_t)len + 2 > n) return 0;
        i += (size_t)len + 2;
    }
    return (long)i;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    memcpy(get_reply, "$128\r\n", 6);
    memset(get_reply + 6, 'x', 128);
    memcpy(get_reply + 134, "\r\n", 2);
    int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1])),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 512)) {
        perror("bind/listen");
        return 1;
    }
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int e = 0; e < n; e++) {
            struct conn *c = evs[e].data.ptr;
            if (!c) {
                int fd = accept(ls, NULL, NULL);
                if (fd < 0) continue;
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                c = calloc(1, sizeof *c);
                c->fd = fd;
                struct epoll_event cev = {.events = EPOLLIN, .data.ptr = c};
                epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
                continue;
            }
            ssize_t r = read(c->fd, c->in + c->len, BUF - c->len);
            if (r <= 0) {
                if (r < 0 && errno == EAGAIN) continue;
                close(c->fd);
                free(c);
                continue;
            }
            c->len += (size_t)r;
            size_t pos = 0, olen = 0;
            long f;
            char first = 0;
            while ((f = frame(c->in + pos, c->len - pos, &first)) > 0) {
                pos += (size_t)f;
                const char *rep = "*0\r\n";
                size_t rl = 4;
                if (first == 'G' || first == 'g') rep = get_reply, rl = sizeof get_reply;
                else if (first == 'S' || first == 's') rep = "+OK\r\n", rl = 5;
                if (olen + rl > OUT) break;
                memcpy(c->out + olen, rep, rl);
                olen += rl;
            }
            if (f < 0 || (pos == 0 && c->len == BUF)) {
                close(c->fd);
                free(c);
                continue;
            }
            memmove(c->in, c->in + pos, c->len - pos);
            c->len -= pos;
            for (size_t w = 0; w < olen;) {
                ssize_t k = write(c->fd, c->out + w, olen - w);
                if (k <= 0) break;
                w += (size_t)k;
            }
        }
    }
}
