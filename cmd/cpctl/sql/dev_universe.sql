-- cpctl dev -symbols N: enable exactly the symbols in $1 (base assets $2, all quoted in USDT) and
-- disable the other symbols `cpctl dev` manages ($3: the dev universe; and synthetic S0001USDT…).
-- Symbols an operator added by hand are not touched. Returns how many rows each part changed.
WITH want AS (
    SELECT symbol, base FROM unnest($1::text[], $2::text[]) AS u(symbol, base)
), enabled AS (
    INSERT INTO settings.coin_universe AS cu (symbol, base_asset, quote_asset, enabled)
    SELECT symbol, base, 'USDT', true FROM want
    ON CONFLICT (symbol) DO UPDATE SET enabled = true WHERE cu.enabled IS DISTINCT FROM true
    RETURNING symbol
), disabled AS (
    UPDATE settings.coin_universe
       SET enabled = false
     WHERE (symbol = ANY ($3::text[]) OR symbol ~ '^S[0-9]{4}USDT$')
       AND symbol <> ALL ($1::text[])
       AND enabled IS DISTINCT FROM false
    RETURNING symbol
)
SELECT (SELECT count(*) FROM enabled), (SELECT count(*) FROM disabled)
