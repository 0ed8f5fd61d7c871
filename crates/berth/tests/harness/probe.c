/* The attacker: a static probe run inside a berth container. Each argument
 * names one attempt to reach the host; the probe prints one line per
 * attempt, `NAME=ok` when the attempt worked (the container reached
 * something it must not) or `NAME=blocked:ERRNO` when the kernel refused,
 * and for the reading checks the data it found. The tests decide what each
 * line must say.
 *
 *   fds              open descriptors above 2, as `fds=3,4` (or `fds=`)
 *   open-rw:PATH     open PATH read-write
 *   open-r:PATH      open PATH read-only
 *   tmpfs-mknod:DIR  mount a tmpfs (dev allowed) at DIR, make DIR/n a char
 *                    device 10:237 and open it read-write
 *   create:PATH      create a file at PATH
 *   read:PATH        read PATH; prints `NAME=ok:` + the bytes, NULs as '|'
 *   ptrace1          PTRACE_SEIZE PID 1
 *   tiocsti:FD       push a character into the terminal on FD
 *   tiocsti-tty      the same on a fresh open of /dev/tty
 *   io_uring         io_uring_setup
 *   keyctl           keyctl(KEYCTL_JOIN_SESSION_KEYRING)
 *   bpf              bpf(BPF_PROG_LOAD) of nothing
 *   udp-echo:PORT    (not an attack) serve UDP PORT for good: answer each
 *                    datagram with the sender's address as it arrived;
 *                    prints `udp-echo:PORT=ready` once bound
 *   personality      personality(READ_IMPLIES_EXEC)
 *   mknod-open:PATH  make PATH a char device 10:237 (loop-control), open it
 *   ttydev           the devices behind 0-2, as stat's %t:%T (`-` if none)
 *   write:PATH       open an existing PATH for writing
 *   remount-rw:PATH  remount the mount at PATH read-write
 *   mount-proc:PATH  mount a fresh procfs at PATH (made if missing)
 *   mount-sysfs:PATH mount a fresh sysfs at PATH (made if missing)
 *   unshare-user     unshare(CLONE_NEWUSER)
 *   packet           socket(AF_PACKET, SOCK_RAW): sniffing the network
 *   env:NAME         print the variable NAME (`NAME=` + value, `-` unset)
 *   sleep:N          sleep N seconds (to be looked at from the host)
 *   frame:IF:HEX     send the raw Ethernet frame HEX (header included; a
 *                    zero source MAC becomes IF's) on IF three times
 *                    (needs CAP_NET_RAW)
 *   sniff:IF:SECS    count for SECS seconds the frames on IF that end in
 *                    be 27 00 K, as `sniff=K:COUNT,…` (K hex)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <termios.h>
#include <unistd.h>

static void result(const char *name, long r) {
    if (r < 0)
        printf("%s=blocked:%s\n", name, strerrorname_np(errno) ? strerrorname_np(errno) : "?");
    else
        printf("%s=ok\n", name);
}

static void fds(void) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) {
        printf("fds=blocked:%s\n", strerrorname_np(errno));
        return;
    }
    int self = dirfd(d);
    struct dirent *e;
    char list[4096] = "";
    while ((e = readdir(d))) {
        int fd = atoi(e->d_name);
        if (e->d_name[0] == '.' || fd <= 2 || fd == self)
            continue;
        char link[256] = "", path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(path, link, sizeof link - 1);
        if (n > 0)
            link[n] = 0;
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%d(%s)", list[0] ? "," : "", fd, link);
    }
    closedir(d);
    printf("fds=%s\n", list);
}

static void readfile(const char *name, const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        result(name, -1);
        return;
    }
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    if (n < 0) {
        result(name, -1);
        return;
    }
    for (ssize_t i = 0; i < n; i++)
        if (buf[i] == 0 || buf[i] == '\n')
            buf[i] = '|';
    printf("%s=ok:%.*s\n", name, (int)n, buf);
}

static int packet_socket(const char *ifname, struct sockaddr_ll *ll) {
    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
    if (fd < 0)
        return -1;
    memset(ll, 0, sizeof *ll);
    ll->sll_family = AF_PACKET;
    ll->sll_protocol = htons(ETH_P_ALL);
    ll->sll_ifindex = if_nametoindex(ifname);
    if (!ll->sll_ifindex || bind(fd, (struct sockaddr *)ll, sizeof *ll) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* frame:IF:HEX */
static void frame(const char *name, char *spec) {
    char *hex = strchr(spec, ':');
    if (!hex) {
        errno = EINVAL;
        result(name, -1);
        return;
    }
    *hex++ = 0;
    unsigned char buf[1514];
    size_t n = 0;
    for (; hex[0] && hex[1] && n < sizeof buf; hex += 2) {
        unsigned v;
        sscanf(hex, "%2x", &v);
        buf[n++] = v;
    }
    struct sockaddr_ll ll;
    int fd = packet_socket(spec, &ll);
    long r = fd;
    static const unsigned char zero[6];
    if (fd >= 0 && n >= 12 && !memcmp(buf + 6, zero, 6)) {
        struct ifreq ifr = {0};
        snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", spec);
        r = ioctl(fd, SIOCGIFHWADDR, &ifr);
        memcpy(buf + 6, ifr.ifr_hwaddr.sa_data, 6);
    }
    for (int i = 0; i < 3 && r >= 0; i++)
        r = sendto(fd, buf, n, 0, (struct sockaddr *)&ll, sizeof ll);
    result(name, r);
    if (fd >= 0)
        close(fd);
}

/* sniff:IF:SECS */
static void sniff(const char *name, char *spec) {
    char *secs = strchr(spec, ':');
    if (!secs) {
        errno = EINVAL;
        result(name, -1);
        return;
    }
    *secs++ = 0;
    struct sockaddr_ll ll;
    int fd = packet_socket(spec, &ll);
    if (fd < 0) {
        result(name, -1);
        return;
    }
    printf("sniff-ready\n");
    int counts[256] = {0};
    int left_ms = atoi(secs) * 1000;
    while (left_ms > 0) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 100) > 0) {
            unsigned char buf[2048];
            ssize_t n = recv(fd, buf, sizeof buf, 0);
            static const unsigned char mark[3] = {0xbe, 0x27, 0};
            if (n >= 18 && !memcmp(buf + n - 4, mark, 3))
                counts[buf[n - 1]]++;
        }
        left_ms -= 100;
    }
    close(fd);
    printf("sniff=");
    for (int k = 0; k < 256; k++)
        if (counts[k])
            printf("%x:%d,", k, counts[k]);
    printf("\n");
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int i = 1; i < argc; i++) {
        char *a = argv[i], *arg = strchr(a, ':');
        if (arg)
            arg++;
        errno = 0;
        if (!strcmp(a, "fds"))
            fds();
        else if (!strncmp(a, "open-rw:", 8)) {
            int fd = open(arg, O_RDWR | O_CLOEXEC);
            result(a, fd);
            if (fd >= 0)
                close(fd);
        } else if (!strncmp(a, "open-r:", 7)) {
            int fd = open(arg, O_RDONLY | O_CLOEXEC);
            result(a, fd);
            if (fd >= 0)
                close(fd);
        } else if (!strncmp(a, "tmpfs-mknod:", 12)) {
            char node[256];
            mkdir(arg, 0755);
            if (mount("tmpfs", arg, "tmpfs", 0, NULL) < 0) {
                printf("%s=mount-refused:%s\n", a, strerrorname_np(errno));
                continue;
            }
            snprintf(node, sizeof node, "%s/n", arg);
            if (mknod(node, S_IFCHR | 0666, makedev(10, 237)) < 0) {
                printf("%s=mknod-refused:%s\n", a, strerrorname_np(errno));
                continue;
            }
            int fd = open(node, O_RDWR | O_CLOEXEC);
            result(a, fd);
            if (fd >= 0)
                close(fd);
        } else if (!strncmp(a, "create:", 7)) {
            int fd = open(arg, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
            result(a, fd);
            if (fd >= 0)
                close(fd);
        } else if (!strncmp(a, "write:", 6)) {
            int fd = open(arg, O_WRONLY | O_CLOEXEC);
            result(a, fd);
            if (fd >= 0)
                close(fd);
        } else if (!strncmp(a, "remount-rw:", 11))
            result(a, mount(NULL, arg, NULL, MS_REMOUNT | MS_BIND, NULL));
        else if (!strncmp(a, "mount-proc:", 11) || !strncmp(a, "mount-sysfs:", 12)) {
            const char *fs = a[6] == 'p' ? "proc" : "sysfs";
            mkdir(arg, 0755);
            result(a, mount(fs, arg, fs, 0, NULL));
        } else if (!strncmp(a, "udp-echo:", 9)) {
            int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
            struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(atoi(arg))};
            if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
                result(a, -1);
                continue;
            }
            printf("%s=ready\n", a);
            for (;;) {
                char buf[512], out[64];
                struct sockaddr_in from;
                socklen_t fl = sizeof from;
                if (recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl) < 0)
                    continue;
                int m = snprintf(out, sizeof out, "%s", inet_ntoa(from.sin_addr));
                sendto(fd, out, m, 0, (struct sockaddr *)&from, fl);
            }
        } else if (!strncmp(a, "frame:", 6)) {
            frame("frame", arg);
        } else if (!strncmp(a, "sniff:", 6)) {
            sniff("sniff", arg);
        } else if (!strcmp(a, "packet")) {
            int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
            result(a, fd);
            if (fd >= 0)
                close(fd);
        } else if (!strcmp(a, "unshare-user"))
            result(a, unshare(CLONE_NEWUSER));
        else if (!strncmp(a, "read:", 5))
            readfile(a, arg);
        else if (!strcmp(a, "ptrace1"))
            result(a, ptrace(PTRACE_SEIZE, 1, 0, 0));
        else if (!strncmp(a, "tiocsti:", 8)) {
            char c = '#';
            result(a, ioctl(atoi(arg), TIOCSTI, &c));
        } else if (!strcmp(a, "tiocsti-tty")) {
            int fd = open("/dev/tty", O_RDWR | O_CLOEXEC);
            char c = '#';
            result(a, fd < 0 ? fd : ioctl(fd, TIOCSTI, &c));
        } else if (!strcmp(a, "io_uring")) {
            char params[120] = {0};
            long r = syscall(SYS_io_uring_setup, 4, params);
            result(a, r);
        } else if (!strcmp(a, "keyctl"))
            result(a, syscall(SYS_keyctl, 1 /* KEYCTL_JOIN_SESSION_KEYRING */, 0));
        else if (!strcmp(a, "bpf")) {
            char attr[128] = {0};
            result(a, syscall(SYS_bpf, 5 /* BPF_PROG_LOAD */, attr, sizeof attr));
        } else if (!strcmp(a, "personality"))
            result(a, personality(READ_IMPLIES_EXEC));
        else if (!strncmp(a, "mknod-open:", 11)) {
            if (mknod(arg, S_IFCHR | 0666, makedev(10, 237)) < 0) {
                result(a, -1);
                continue;
            }
            int fd = open(arg, O_RDWR | O_CLOEXEC);
            result(a, fd);
            if (fd >= 0)
                close(fd);
            unlink(arg);
        } else if (!strcmp(a, "ttydev")) {
            printf("ttydev=");
            for (int fd = 0; fd < 3; fd++) {
                struct stat st;
                if (fstat(fd, &st) == 0 && S_ISCHR(st.st_mode))
                    printf("%s%x:%x", fd ? "," : "", major(st.st_rdev), minor(st.st_rdev));
                else
                    printf("%s-", fd ? "," : "");
            }
            printf("\n");
        } else if (!strncmp(a, "env:", 4))
            printf("%s=%s\n", a, getenv(arg) ? getenv(arg) : "-");
        else if (!strncmp(a, "sleep:", 6))
            sleep(atoi(arg));
        else {
            printf("%s=unknown-check\n", a);
            return 2;
        }
    }
    return 0;
}
