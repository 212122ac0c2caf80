-- What each attempt sent and got back, for the attempt log: headers as a JSON object (secrets masked) and the
-- first bytes of each body (the bound is the kernel's; absent for attempts made before this migration).
ALTER TABLE attempts ADD COLUMN request_headers TEXT;
ALTER TABLE attempts ADD COLUMN request_body BYTEA;
ALTER TABLE attempts ADD COLUMN response_headers TEXT;
ALTER TABLE attempts ADD COLUMN response_body BYTEA;
