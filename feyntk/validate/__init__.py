"""Stage 6: validation against real sampled networks (MATH.md §5).

``sample`` draws networks and computes Ĥ, dĤ, ddÎ, ddÎÎ by automatic differentiation;
``estimators`` turns them into the fifteen order-1/n statistics with standard errors.
"""

from feyntk.validate.estimators import ESTIMATORS as ESTIMATORS
from feyntk.validate.estimators import estimate as estimate
from feyntk.validate.estimators import estimate_from_fields as estimate_from_fields
from feyntk.validate.estimators import offdiagonal_ntk_mean as offdiagonal_ntk_mean
from feyntk.validate.sample import FIELDS as FIELDS
from feyntk.validate.sample import FieldSpec as FieldSpec
from feyntk.validate.sample import SamplingPlan as SamplingPlan
from feyntk.validate.sample import network_fields as network_fields
from feyntk.validate.sample import plan_sampling as plan_sampling
from feyntk.validate.sample import sample as sample
from feyntk.validate.sample import sample_fields as sample_fields
from feyntk.validate.six_point import estimate_v6 as estimate_v6
from feyntk.validate.six_point import v6_from_z as v6_from_z
