/* The C reference: MPI_Allreduce (float32 sum) or MPI_Sendrecv (a ring shift) timed as IMB and
 * the OSU micro-benchmarks do: barrier, warm-up, N back-to-back calls, the per-rank mean, and
 * the max / mean / min of that mean over ranks (t_max is the headline).
 *
 * The iteration count follows the sweep's rule (tessera_mpi.fabric.sweep.measure): one call
 * timed after a barrier (the slowest rank's), then as many iterations as fit in the budget,
 * at least 2, at most min(max_iterations, max(5, 1 GiB / bytes)). The comparison is then of
 * the loops, not of different iteration counts.
 *
 * As a program (build.sh makes build/mpi_loop):
 *
 *   mpirun -n 2 ./mpi_loop allreduce|sendrecv BUDGET_S MAX_ITERATIONS BYTES...
 *
 * prints one line per size: op bytes iterations t_max_us t_avg_us t_min_us. MPI starts with
 * MPI_Init, as IMB and OSU do; MPI_LOOP_THREADS=multiple starts it with
 * MPI_Init_thread(MPI_THREAD_MULTIPLE) instead, as mpi4py does by default.
 *
 * As a library (build/libmpi_loop.so, -DMPI_LOOP_LIBRARY): mpi_loop_measure, called by
 * scripts/bench_vs_c.py inside the sweep's own job, size by size between the sweep's
 * measurements, so that both loops meet the same moment of a shared machine.
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long iterations_for(long nbytes, long max_iterations) {
    long by_bytes = (1L << 30) / (nbytes > 0 ? nbytes : 1);
    long cap = by_bytes < max_iterations ? by_bytes : max_iterations;
    return cap > 5 ? cap : 5;
}

/* One measurement on the communicator whose handle lies at comm_h; collective over it.
 * out: iterations, t_max, t_avg, t_min (seconds). Returns the bytes measured. */
long mpi_loop_measure(int allreduce, const void *comm_h, long nbytes, double budget, long max_iterations,
                      double *out) {
    MPI_Comm comm = *(const MPI_Comm *)comm_h;
    int rank, size;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    int dest = (rank + 1) % size, source = (rank - 1 + size) % size;
    int count = (int)(nbytes / 4 > 0 ? nbytes / 4 : 1);
    /* Page-aligned, as the OSU micro-benchmarks allocate (malloc's large blocks start 16 bytes
     * into a page, which made this loop slower than the sweep's NumPy buffers at 64-512 KiB). */
    void *s = NULL, *r = NULL;
    if (posix_memalign(&s, 4096, (size_t)count * 4) || posix_memalign(&r, 4096, (size_t)count * 4))
        MPI_Abort(comm, 1);
    float *send = s, *recv = r;
    for (int i = 0; i < count; i++) send[i] = (float)(rank + i % 251);
    memset(recv, 0, (size_t)count * 4);
#define CALL() (allreduce ? MPI_Allreduce(send, recv, count, MPI_FLOAT, MPI_SUM, comm) \
                          : MPI_Sendrecv(send, count, MPI_FLOAT, dest, 0, recv, count, MPI_FLOAT, \
                                         source, 0, comm, MPI_STATUS_IGNORE))
    CALL();
    MPI_Barrier(comm);
    double start = MPI_Wtime();
    CALL();
    double once = MPI_Wtime() - start, slowest;
    MPI_Allreduce(&once, &slowest, 1, MPI_DOUBLE, MPI_MAX, comm);
    long cap = iterations_for((long)count * 4, max_iterations);
    long n = (long)(budget / (slowest > 1e-7 ? slowest : 1e-7));
    n = n < cap ? n : cap;
    n = n > 2 ? n : 2;
    CALL();
    MPI_Barrier(comm);
    start = MPI_Wtime();
    for (long i = 0; i < n; i++) CALL();
    double mean = (MPI_Wtime() - start) / n, t_sum;
    MPI_Allreduce(&mean, &out[1], 1, MPI_DOUBLE, MPI_MAX, comm);
    MPI_Allreduce(&mean, &t_sum, 1, MPI_DOUBLE, MPI_SUM, comm);
    MPI_Allreduce(&mean, &out[3], 1, MPI_DOUBLE, MPI_MIN, comm);
    out[0] = (double)n;
    out[2] = t_sum / size;
    free(send);
    free(recv);
    return (long)count * 4;
}

#ifndef MPI_LOOP_LIBRARY
int main(int argc, char **argv) {
    const char *threads = getenv("MPI_LOOP_THREADS");
    if (threads && strcmp(threads, "multiple") == 0) {
        int provided;
        MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
    } else {
        MPI_Init(&argc, &argv);
    }
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (argc < 5 || (strcmp(argv[1], "allreduce") && strcmp(argv[1], "sendrecv"))) {
        if (rank == 0)
            fprintf(stderr, "usage: mpi_loop allreduce|sendrecv BUDGET_S MAX_ITERATIONS BYTES...\n");
        MPI_Finalize();
        return 2;
    }
    MPI_Comm world = MPI_COMM_WORLD;
    for (int a = 4; a < argc; a++) {
        double out[4];
        long bytes = mpi_loop_measure(strcmp(argv[1], "allreduce") == 0, &world, atol(argv[a]), atof(argv[2]),
                                      atol(argv[3]), out);
        if (rank == 0)
            printf("%s %ld %ld %.4f %.4f %.4f\n", argv[1], bytes, (long)out[0], out[1] * 1e6, out[2] * 1e6,
                   out[3] * 1e6);
        fflush(stdout);
    }
    MPI_Finalize();
    return 0;
}
#endif
