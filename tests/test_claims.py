"""The claims scoreboard: verdicts from numbers over seeds, notebooks' claims files gathered in order,
and every claim that no notebook tested marked untestable."""
import pytest

from readnet import claims


def test_compare_decides_on_the_mean_over_seeds_and_says_by_how_much():
    claim = claims.compare("atl_beats_basel", "mAP (%)", {"ATL": [42.0, 41.0, 43.0], "Basel": [35.0, 34.0, 36.0]},
                           "ATL", ["Basel"], "Market-1501: 70.5 vs 66.3", seeds=[0, 1, 2], data="synthetic Market")
    assert claim.holds == "true" and claim.seeds == "0, 1, 2"
    assert claim.value == "ATL 42.0 +/- 1.0 vs Basel 35.0 +/- 1.0"
    assert "7.0 better than Basel on synthetic Market" in claim.why and "spread over seeds is 1.0" in claim.why
    lower = claims.compare("acn_lowers_camera_probe", "camera probe (%)", {"ACN": [90.0], "Basel": [80.0]}, "ACN",
                           ["Basel"], "§3.3", seeds=[0], lower_is_better=True)
    assert lower.holds == "false" and "one seed" in lower.why


def test_a_difference_within_the_minimum_effect_is_no_effect():
    probes = {"ACN": [97.0], "Basel": [97.4]}
    tiny = claims.compare("acn_lowers_camera_probe", "camera probe (%)", probes, "ACN", ["Basel"], "§3.3", [0],
                          lower_is_better=True, min_effect=5.0)
    assert tiny.holds == "false" and "0.4 better than Basel" in tiny.why and "must exceed 5" in tiny.why
    clear = claims.compare("acn_lowers_camera_probe", "camera probe (%)", {"ACN": [80.0], "Basel": [97.4]}, "ACN",
                           ["Basel"], "§3.3", [0], lower_is_better=True, min_effect=5.0)
    assert clear.holds == "true"


def test_best_of_several_needs_to_beat_each_and_a_missing_result_is_untestable():
    values = {"ATL+ACN": [50.0], "ATL": [49.0], "ACN": [51.0], "Basel": [40.0]}
    assert claims.compare("atl_acn_best", "mAP", values, "ATL+ACN", ["ATL", "ACN", "Basel"], "", [0]).holds == "false"
    missing = claims.compare("atl_acn_best", "mAP", {"ATL+ACN": [50.0]}, "ATL+ACN", ["ATL"], "", [0])
    assert missing.holds == "untestable" and "no result for ATL" in missing.why


def test_the_scoreboard_lists_every_claim_in_order_with_untested_ones_untestable(tmp_path):
    claims.save([claims.compare("atl_beats_basel", "mAP", {"ATL": [2.0], "Basel": [1.0]}, "ATL", ["Basel"], "", [0])],
                "05", tmp_path)
    claims.save([claims.untestable("fig1", "accuracy", "Fig. 1", "no MNIST")], "01", tmp_path)
    board = claims.scoreboard(tmp_path)
    assert list(board["claim"]) == list(claims.CLAIMS)
    assert list(board.columns) == ["claim", "statement", "metric", "value", "reference", "holds", "seeds", "why"]
    rows = board.set_index("claim")
    assert rows.loc["atl_beats_basel", "holds"] == "true" and rows.loc["fig1", "why"] == "no MNIST"
    assert rows.loc["expat_cross_modal", "holds"] == "untestable"
    assert rows.loc["expat_cross_modal", "why"] == "no notebook of this run tested it"


def test_a_claim_outside_the_list_or_a_verdict_outside_three_is_refused():
    with pytest.raises(ValueError, match="unknown claim"):
        claims.untestable("atl_wins_everything", "mAP", "", "")
    with pytest.raises(ValueError, match="holds must be one of"):
        claims.Claim("fig1", "m", "v", "r", "maybe", "0", "")
