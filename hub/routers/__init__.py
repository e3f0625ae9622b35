"""One APIRouter per resource; each declares its access policy at router level."""
