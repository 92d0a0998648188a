"""The dashboard's routes, one APIRouter per area; `create_app` mounts every one of them."""
