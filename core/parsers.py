"""The API's JSON parser: DRF's, but a body nested too deeply for Python's parser is a 400, not a 500."""

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


class JSONParserDepthSafe(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            # `[[[[...]]]]` a thousand deep is 2 KB, well inside the size limit, and makes json.loads recurse out
            # of the interpreter's stack: nothing a client sends us is nested like that.
            raise ParseError("JSON parse error - the body is nested too deeply.") from None
