"""The live loop's host-gap figure, on a hand-made iteration table."""

import pandas as pd

from bulletsim.live.run import back_to_back_gaps


def test_gaps_count_only_consecutive_decode_iterations_of_one_lane():
    it = pd.DataFrame(
        {
            "lane": ["main", "main", "main", "main", "decode"],
            "start_s": [0.0, 0.0105, 0.0300, 0.0410, 0.5],
            "end_s": [0.0100, 0.0200, 0.0400, 0.0500, 0.6],
            # 3rd has no decode (a pure prefill): the 2->3 and 3->4 gaps are not counted
            "decode_tokens": [8, 8, 0, 8, 4],
        }
    )
    g = back_to_back_gaps(it)
    assert g["n"] == 1
    assert abs(g["p50"] - 0.5) < 1e-9  # 10.5 ms start - 10.0 ms end
    assert back_to_back_gaps(it.iloc[2:3]) == {"n": 0}
