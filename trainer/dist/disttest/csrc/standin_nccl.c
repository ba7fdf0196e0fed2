/* A stand-in libnccl for tests without GPUs: the NCCL calls the trainer
   makes, with NCCL's signatures (ncclCommInitRank takes the 128-byte
   ncclUniqueId by value), working on host pointers. The ranks of a
   communicator are processes of one host meeting in a POSIX shared-memory
   segment named by the unique id; collectives run at once (the stream is
   ignored) and sum in rank order, so every rank gets the same bits. Only
   float32 (ncclFloat32) is supported. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef struct { char internal[128]; } ncclUniqueId;
typedef struct comm *ncclComm_t;
typedef void *cudaStream_t;

enum { ncclSuccess = 0, ncclSystemError = 2, ncclInvalidArgument = 4, ncclInvalidUsage = 5 };
enum { ncclSum = 0, ncclAvg = 4 };
enum { ncclFloat32 = 7 };

#define MAGIC "nccl-standin:"
#define CHUNK (1 << 16) /* floats per rank slot */

struct shared {
	int ready;
	int nranks;
	pthread_barrier_t bar;
	float slot[]; /* nranks * CHUNK */
};

struct comm {
	int rank, nranks;
	char name[128];
	struct shared *sh;
	size_t size;
};

static int calls_allreduce;

int ncclGetVersion(int *v) { *v = 22000; return ncclSuccess; }

const char *ncclGetErrorString(int r) {
	switch (r) {
	case ncclSuccess: return "no error";
	case ncclSystemError: return "stand-in: system error";
	case ncclInvalidArgument: return "stand-in: invalid argument";
	case ncclInvalidUsage: return "stand-in: invalid usage (bad unique id?)";
	}
	return "stand-in: unknown error";
}

int ncclGetUniqueId(ncclUniqueId *id) {
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	memset(id, 0, sizeof *id);
	snprintf(id->internal, sizeof id->internal, MAGIC "/plstandin-%d-%ld", (int)getpid(), (long)ts.tv_nsec);
	return ncclSuccess;
}

int ncclCommInitRank(ncclComm_t *out, int nranks, ncclUniqueId id, int rank) {
	if (strncmp(id.internal, MAGIC, strlen(MAGIC)) != 0 || nranks < 1 || rank < 0 || rank >= nranks)
		return ncclInvalidUsage;
	struct comm *c = calloc(1, sizeof *c);
	c->rank = rank;
	c->nranks = nranks;
	snprintf(c->name, sizeof c->name, "%s", id.internal + strlen(MAGIC));
	c->size = sizeof(struct shared) + (size_t)nranks * CHUNK * sizeof(float);
	int fd;
	if (rank == 0) {
		fd = shm_open(c->name, O_CREAT | O_EXCL | O_RDWR, 0600);
		if (fd < 0 || ftruncate(fd, (off_t)c->size) != 0) return ncclSystemError;
	} else {
		for (int i = 0;; i++) { /* wait for rank 0 to create and size it */
			fd = shm_open(c->name, O_RDWR, 0600);
			struct stat st;
			if (fd >= 0 && fstat(fd, &st) == 0 && (size_t)st.st_size == c->size) break;
			if (fd >= 0) close(fd);
			if (i > 60000) return ncclSystemError;
			usleep(1000);
		}
	}
	c->sh = mmap(NULL, c->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (c->sh == MAP_FAILED) return ncclSystemError;
	if (rank == 0) {
		pthread_barrierattr_t a;
		pthread_barrierattr_init(&a);
		pthread_barrierattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
		pthread_barrier_init(&c->sh->bar, &a, (unsigned)nranks);
		c->sh->nranks = nranks;
		__atomic_store_n(&c->sh->ready, 1, __ATOMIC_RELEASE);
	} else {
		while (!__atomic_load_n(&c->sh->ready, __ATOMIC_ACQUIRE)) usleep(1000);
		if (c->sh->nranks != nranks) return ncclInvalidUsage;
	}
	pthread_barrier_wait(&c->sh->bar);
	*out = c;
	return ncclSuccess;
}

int ncclGroupStart(void) { return ncclSuccess; }
int ncclGroupEnd(void) { return ncclSuccess; }

int ncclAllReduce(const void *send, void *recv, size_t count, int dtype, int op, ncclComm_t c, cudaStream_t s) {
	(void)s;
	if (dtype != ncclFloat32 || (op != ncclSum && op != ncclAvg)) return ncclInvalidArgument;
	calls_allreduce++;
	const float *in = send;
	float *res = recv;
	float *mine = c->sh->slot + (size_t)c->rank * CHUNK;
	for (size_t off = 0; off < count; off += CHUNK) {
		size_t n = count - off < CHUNK ? count - off : CHUNK;
		memcpy(mine, in + off, n * sizeof(float));
		pthread_barrier_wait(&c->sh->bar);
		for (size_t i = 0; i < n; i++) {
			float acc = 0;
			for (int r = 0; r < c->nranks; r++) acc += c->sh->slot[(size_t)r * CHUNK + i];
			res[off + i] = op == ncclAvg ? acc / (float)c->nranks : acc;
		}
		pthread_barrier_wait(&c->sh->bar);
	}
	return ncclSuccess;
}

int ncclBroadcast(const void *send, void *recv, size_t count, int dtype, int root, ncclComm_t c, cudaStream_t s) {
	(void)s;
	if (dtype != ncclFloat32 || root < 0 || root >= c->nranks) return ncclInvalidArgument;
	for (size_t off = 0; off < count; off += CHUNK) {
		size_t n = count - off < CHUNK ? count - off : CHUNK;
		if (c->rank == root) memcpy(c->sh->slot, (const float *)send + off, n * sizeof(float));
		pthread_barrier_wait(&c->sh->bar);
		if (c->rank != root) memcpy((float *)recv + off, c->sh->slot, n * sizeof(float));
		pthread_barrier_wait(&c->sh->bar);
	}
	return ncclSuccess;
}

int ncclCommDestroy(ncclComm_t c) {
	pthread_barrier_wait(&c->sh->bar);
	if (c->rank == 0) shm_unlink(c->name);
	munmap(c->sh, c->size);
	free(c);
	return ncclSuccess;
}

/* standinAllReduceCalls is not NCCL's: how many all-reduces this process made. */
int standinAllReduceCalls(void) { return calls_allreduce; }
