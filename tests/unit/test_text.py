from tessera_mpi.util.text import plural, rank_ranges, shape_str


def test_rank_ranges():
    assert rank_ranges([0, 1, 2, 5, 7, 8]) == "0-2,5,7-8"
    assert rank_ranges([3]) == "3" and rank_ranges([]) == "none"
    assert rank_ranges([2, 1, 1]) == "1-2"


def test_plural_and_shape():
    assert plural(1, "rank") == "1 rank" and plural(72, "rank") == "72 ranks"
    assert shape_str((6, 6, 2)) == "6x6x2"
