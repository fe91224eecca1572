// The floor of the swarm benchmark: the least work any seed -> leech transfer of one
// file over loopback TCP into a new file must do on this machine, with no protocol at
// all. The seed sends the file with sendfile(2) (or pread + send with "read"); the leech
// receives 1 MiB pieces, hashes each with OpenSSL's SHA-1 (SHA-NI where the CPU has it)
// and pwrites it, the hashing and writing on a second thread so receiving overlaps.
// With "mmap" as the leech mode, the leech instead maps the new file and receives
// straight into the mapping (no write copy) and hashes from it: the floor of a leech
// that saves the copy into the page cache.
// Prints one line: FLOOR wall=S seed_cpu=S leech_cpu=S (CPU: user + system, all threads).
//
//   cc -O2 -o floor floor.c -lcrypto -lpthread && ./floor SRC DST [sendfile|read] [write|mmap]
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PIECE (1 << 20)
#define NBUF 8

static char *bufs[NBUF];
static size_t lens[NBUF];
static size_t head, tail;
static int done, outfd;
static char *map; // the mapped destination in "mmap" mode
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;

static double cpu(void) {
  struct rusage r;
  getrusage(RUSAGE_SELF, &r);
  return r.ru_utime.tv_sec + r.ru_utime.tv_usec / 1e6 + r.ru_stime.tv_sec + r.ru_stime.tv_usec / 1e6;
}

static void die(const char *what) {
  perror(what);
  exit(1);
}

// Hashes and writes every piece the receiving thread hands over, in order.
static void *worker(void *unused) {
  (void)unused;
  off_t at = 0;
  unsigned char md[SHA_DIGEST_LENGTH];
  for (;;) {
    pthread_mutex_lock(&mu);
    while (head == tail && !done) pthread_cond_wait(&cv, &mu);
    if (head == tail) {
      pthread_mutex_unlock(&mu);
      return NULL;
    }
    size_t i = tail % NBUF;
    pthread_mutex_unlock(&mu);
    if (map) {
      SHA1((unsigned char *)map + at, lens[i], md);
    } else {
      SHA1((unsigned char *)bufs[i], lens[i], md);
      if (pwrite(outfd, bufs[i], lens[i], at) != (ssize_t)lens[i]) die("pwrite");
    }
    at += lens[i];
    pthread_mutex_lock(&mu);
    tail++;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
  }
}

static void seed(int ls, const char *src, size_t size, int use_sendfile, int report) {
  int c = accept(ls, NULL, NULL), fd = open(src, O_RDONLY);
  if (c < 0 || fd < 0) die("seed");
  char *b = malloc(256 << 10);
  off_t off = 0;
  while ((size_t)off < size) {
    if (use_sendfile) {
      ssize_t n = sendfile(c, fd, &off, size - off > PIECE ? PIECE : size - off);
      if (n <= 0) die("sendfile");
    } else {
      ssize_t n = pread(fd, b, 256 << 10, off);
      if (n <= 0) die("pread");
      for (ssize_t s = 0; s < n;) {
        ssize_t m = send(c, b + s, n - s, 0);
        if (m <= 0) die("send");
        s += m;
      }
      off += n;
    }
  }
  shutdown(c, SHUT_WR);
  char x;
  recv(c, &x, 1, 0);
  double used = cpu();
  if (write(report, &used, sizeof used) != sizeof used) die("report");
  _exit(0);
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s SRC DST [sendfile|read] [write|mmap]\n", argv[0]);
    return 2;
  }
  const char *src = argv[1], *dst = argv[2];
  int use_sendfile = argc < 4 || strcmp(argv[3], "read") != 0;
  int use_mmap = argc >= 5 && strcmp(argv[4], "mmap") == 0;
  struct stat st;
  if (stat(src, &st) != 0) die(src);
  size_t size = st.st_size;
  int ls = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
  socklen_t sl = sizeof sa;
  if (bind(ls, (void *)&sa, sizeof sa) || listen(ls, 1) || getsockname(ls, (void *)&sa, &sl)) die("listen");
  int report[2];
  if (pipe(report)) die("pipe");
  pid_t pid = fork();
  if (pid == 0) seed(ls, src, size, use_sendfile, report[1]);

  int s = socket(AF_INET, SOCK_STREAM, 0);
  if (connect(s, (void *)&sa, sizeof sa)) die("connect");
  outfd = open(dst, (use_mmap ? O_RDWR : O_WRONLY) | O_CREAT | O_TRUNC, 0644);
  if (outfd < 0) die(dst);
  for (int i = 0; i < NBUF; i++) bufs[i] = malloc(PIECE);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  double c0 = cpu();
  if (use_mmap) {
    if (ftruncate(outfd, size)) die("ftruncate");
    map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, outfd, 0);
    if (map == MAP_FAILED) die("mmap");
  }
  pthread_t th;
  pthread_create(&th, NULL, worker, NULL);
  for (size_t got = 0; got < size;) {
    pthread_mutex_lock(&mu);
    while (head - tail >= NBUF) pthread_cond_wait(&cv, &mu);
    size_t i = head % NBUF;
    pthread_mutex_unlock(&mu);
    size_t f = 0;
    while (f < PIECE && got + f < size) {
      ssize_t n = recv(s, (map ? map + got : bufs[i]) + f, PIECE - f, 0);
      if (n <= 0) die("recv");
      f += n;
    }
    lens[i] = f;
    got += f;
    pthread_mutex_lock(&mu);
    head++;
    pthread_cond_signal(&cv);
    pthread_mutex_unlock(&mu);
  }
  pthread_mutex_lock(&mu);
  done = 1;
  pthread_cond_broadcast(&cv);
  pthread_mutex_unlock(&mu);
  pthread_join(th, NULL);
  if (map && munmap(map, size)) die("munmap");
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double leech = cpu() - c0, wall = t1.tv_sec - t0.tv_sec + (t1.tv_nsec - t0.tv_nsec) / 1e9;
  close(s);
  double seed_cpu = 0;
  if (read(report[0], &seed_cpu, sizeof seed_cpu) != sizeof seed_cpu) die("seed report");
  waitpid(pid, NULL, 0);
  printf("FLOOR wall=%.4f seed_cpu=%.4f leech_cpu=%.4f\n", wall, seed_cpu, leech);
  return 0;
}
