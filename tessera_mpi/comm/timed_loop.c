/* The compiled timed loop of tessera_mpi (comm/native.py builds it with the MPI's own mpicc).
 *
 * The barrier, the warm-up, N back-to-back calls and a clock reading after each call run here,
 * so that an iteration costs what a C benchmark loop's does (IMB, OSU): the library call and
 * one MPI_Wtime. Handles arrive as the addresses of mpi4py's handle storage, which makes the
 * Python side independent of whether this MPI's handles are integers or pointers.
 */
#include <mpi.h>
#include <stdlib.h>

enum { ALL_REDUCE, ALL_GATHER, REDUCE_SCATTER, BROADCAST, ALL_TO_ALL, SENDRECV, SENDRECV_REPLACE };

#define TESSERA_LOOP_ABI 2

int tessera_loop_abi(void) { return TESSERA_LOOP_ABI; }

/* Where this library's MPI_Allreduce resolved to: the caller compares it with mpi4py's. */
void *tessera_loop_mpi_allreduce(void) { return (void *)&MPI_Allreduce; }

static int one(int kind, const void *send, void *recv, int count, MPI_Datatype type, MPI_Op op,
               int a, int b, MPI_Comm comm) {
    const void *source = send ? send : MPI_IN_PLACE;
    switch (kind) {
    case ALL_REDUCE: return MPI_Allreduce(source, recv, count, type, op, comm);
    case ALL_GATHER: return MPI_Allgather(source, count, type, recv, count, type, comm);
    case REDUCE_SCATTER: return MPI_Reduce_scatter_block(source, recv, count, type, op, comm);
    case BROADCAST: return MPI_Bcast(recv, count, type, a, comm);
    case ALL_TO_ALL: return MPI_Alltoall(source, count, type, recv, count, type, comm);
    case SENDRECV:
        return MPI_Sendrecv(send, count, type, a, 0, recv, count, type, b, 0, comm, MPI_STATUS_IGNORE);
    case SENDRECV_REPLACE:
        return MPI_Sendrecv_replace(recv, count, type, a, 0, b, 0, comm, MPI_STATUS_IGNORE);
    }
    return MPI_ERR_ARG;
}

/* warmup calls, MPI_Barrier, then len(stamps) - 1 timed calls: stamps[0] after the barrier,
 * stamps[i + 1] after call i. Returns MPI_SUCCESS or the first error code, with the index of
 * the failed call in *failed_at (-1: the barrier, below -1: a warm-up call). */
int tessera_timed_loop(int kind, const void *comm_h, const void *type_h, const void *op_h,
                       const void *send, void *recv, int count, int a, int b, long warmup,
                       long iterations, double *stamps, long *failed_at) {
    MPI_Comm comm = *(const MPI_Comm *)comm_h;
    MPI_Datatype type = *(const MPI_Datatype *)type_h;
    MPI_Op op = op_h ? *(const MPI_Op *)op_h : MPI_OP_NULL;
    int rc;
    for (long i = 0; i < warmup; i++)
        if ((rc = one(kind, send, recv, count, type, op, a, b, comm)) != MPI_SUCCESS) {
            *failed_at = -2 - i;
            return rc;
        }
    if ((rc = MPI_Barrier(comm)) != MPI_SUCCESS) {
        *failed_at = -1;
        return rc;
    }
    stamps[0] = MPI_Wtime();
    for (long i = 0; i < iterations; i++) {
        if ((rc = one(kind, send, recv, count, type, op, a, b, comm)) != MPI_SUCCESS) {
            *failed_at = i;
            return rc;
        }
        stamps[i + 1] = MPI_Wtime();
    }
    return MPI_SUCCESS;
}

enum { WINDOW_SEND, WINDOW_RECEIVE, WINDOW_EXCHANGE };

/* One point-to-point window with `peer` (fabric/p2p.py, as osu_bw and osu_bibw): SEND posts
 * `window` sends of `send` and waits for a one-byte acknowledgement (tag + 1), so the clock
 * covers delivery; RECEIVE posts `window` receives into recvs[i] and acknowledges; EXCHANGE
 * posts the receives and the sends at once. *seconds: from the first post to completion. */
int tessera_window(int mode, const void *comm_h, const void *type_h, const void *send,
                   void *const *recvs, int count, int window, int peer, int tag, double *seconds) {
    MPI_Comm comm = *(const MPI_Comm *)comm_h;
    MPI_Datatype type = *(const MPI_Datatype *)type_h;
    MPI_Request *requests = malloc(sizeof(MPI_Request) * 2 * (size_t)window);
    unsigned char ack = 0;
    int n = 0, rc = MPI_SUCCESS;
    if (!requests) return MPI_ERR_NO_MEM;
    double start = MPI_Wtime();
    if (mode != WINDOW_SEND)
        for (int i = 0; i < window && rc == MPI_SUCCESS; i++)
            rc = MPI_Irecv(recvs[i], count, type, peer, tag, comm, &requests[n++]);
    if (mode != WINDOW_RECEIVE)
        for (int i = 0; i < window && rc == MPI_SUCCESS; i++)
            rc = MPI_Isend(send, count, type, peer, tag, comm, &requests[n++]);
    if (rc == MPI_SUCCESS) rc = MPI_Waitall(n, requests, MPI_STATUSES_IGNORE);
    if (rc == MPI_SUCCESS && mode == WINDOW_SEND)
        rc = MPI_Recv(&ack, 1, MPI_BYTE, peer, tag + 1, comm, MPI_STATUS_IGNORE);
    if (rc == MPI_SUCCESS && mode == WINDOW_RECEIVE)
        rc = MPI_Send(&ack, 1, MPI_BYTE, peer, tag + 1, comm);
    *seconds = MPI_Wtime() - start;
    free(requests);
    return rc;
}
