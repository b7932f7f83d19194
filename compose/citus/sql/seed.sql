-- Sample data for the guide's DR checks; runs once (when users is empty).
INSERT INTO users (id, name, email)
SELECT g, 'user-' || g, 'user' || g || '@example.test' FROM generate_series(1, 1000) g;
INSERT INTO events (id, user_id, kind, payload)
SELECT g, 1 + g % 1000, 'seed', jsonb_build_object('n', g) FROM generate_series(1, 2000) g;
INSERT INTO vectors (id, label, embedding)
SELECT g, 'v' || g, ARRAY[(g % 10) / 10.0, (g % 7) / 7.0, (g % 3) / 3.0]::vector
FROM generate_series(1, 200) g;
