/* The C reference: MPI_Allreduce (float32 sum) or MPI_Sendrecv (a ring shift) timed as IMB and
 * the OSU micro-benchmarks do: barrier, warm-up, N back-to-back calls, the per-rank mean, and
 * the max / mean / min of that mean over ranks (t_max is the headline).
 *
 * The iteration count follows the sweep's rule (tessera_mpi.fabric.sweep.measure): one call
 * timed after a barrier (the slowest rank's), then as many iterations as fit in the budget,
 * at least 2, at most min(max_iterations, max(5, 1 GiB / bytes)). The comparison is then of
 * the loops, not of different iteration counts.
 *
 *   mpirun -n 2 ./mpi_loop allreduce|sendrecv BUDGET_S MAX_ITERATIONS BYTES...
 *
 * prints one line per size: op bytes iterations t_max_us t_avg_us t_min_us
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

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (argc < 5 || (strcmp(argv[1], "allreduce") && strcmp(argv[1], "sendrecv"))) {
        if (rank == 0)
            fprintf(stderr, "usage: mpi_loop allreduce|sendrecv BUDGET_S MAX_ITERATIONS BYTES...\n");
        MPI_Finalize();
        return 2;
    }
    int allreduce = strcmp(argv[1], "allreduce") == 0;
    double budget = atof(argv[2]);
    long max_iterations = atol(argv[3]);
    int dest = (rank + 1) % size, source = (rank - 1 + size) % size;
    for (int a = 4; a < argc; a++) {
        long nbytes = atol(argv[a]);
        int count = (int)(nbytes / 4 > 0 ? nbytes / 4 : 1);
        float *send = malloc((size_t)count * 4), *recv = malloc((size_t)count * 4);
        for (int i = 0; i < count; i++) send[i] = (float)(rank + i % 251);
        memset(recv, 0, (size_t)count * 4);
#define CALL() (allreduce ? MPI_Allreduce(send, recv, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD) \
                          : MPI_Sendrecv(send, count, MPI_FLOAT, dest, 0, recv, count, MPI_FLOAT, \
                                         source, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE))
        CALL();
        MPI_Barrier(MPI_COMM_WORLD);
        double start = MPI_Wtime();
        CALL();
        double once = MPI_Wtime() - start, slowest;
        MPI_Allreduce(&once, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        long cap = iterations_for((long)count * 4, max_iterations);
        long n = (long)(budget / (slowest > 1e-7 ? slowest : 1e-7));
        n = n < cap ? n : cap;
        n = n > 2 ? n : 2;
        CALL();
        MPI_Barrier(MPI_COMM_WORLD);
        start = MPI_Wtime();
        for (long i = 0; i < n; i++) CALL();
        double mean = (MPI_Wtime() - start) / n, t_max, t_sum, t_min;
        MPI_Allreduce(&mean, &t_max, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        MPI_Allreduce(&mean, &t_sum, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
        MPI_Allreduce(&mean, &t_min, 1, MPI_DOUBLE, MPI_MIN, MPI_COMM_WORLD);
        if (rank == 0)
            printf("%s %ld %ld %.4f %.4f %.4f\n", argv[1], (long)count * 4, n, t_max * 1e6,
                   t_sum / size * 1e6, t_min * 1e6);
        fflush(stdout);
        free(send);
        free(recv);
    }
    MPI_Finalize();
    return 0;
}
