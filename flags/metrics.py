from prometheus_client import Counter

flag_evaluations_total = Counter(
    "rollout_control_flag_evaluations_total",
    "Flag evaluations served, by flag, variant and reason.",
    ["flag", "variant", "reason"],
)
rate_limited_total = Counter(
    "rollout_control_flag_rate_limited_total",
    "Evaluation requests refused with 429.",
)
