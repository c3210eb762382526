BEGIN;

ALTER TABLE tenants ADD COLUMN plan text NOT NULL DEFAULT 'free';
COMMENT ON COLUMN tenants.plan IS 'billing plan: free; team; enterprise';

COMMIT;
