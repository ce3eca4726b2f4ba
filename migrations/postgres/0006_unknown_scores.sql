-- Unknown is not zero: a score whose formula failed for an account is kept here with the
-- reason ({"utilization": "metric `logins` is missing"}), never stored as a number.
ALTER TABLE accounts ADD COLUMN unknown_scores TEXT NOT NULL DEFAULT '{}';
